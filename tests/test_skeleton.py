from minternet import skeleton


def test_joint_names_follow_interhand_order():
    names = skeleton.JOINT_NAMES
    assert len(names) == 42 and len(set(names)) == 42
    assert names[:4] == ("r_thumb4", "r_thumb3", "r_thumb2", "r_thumb1")
    assert names[16:21] == ("r_pinky4", "r_pinky3", "r_pinky2", "r_pinky1", "r_wrist")
    assert names[21] == "l_thumb4" and names[41] == "l_wrist"
    assert all(n.startswith("r_") for n in names[:21])
    assert all(n.startswith("l_") for n in names[21:])


def test_roots_are_the_wrists_and_have_no_parent():
    assert skeleton.ROOTS == (20, 41)
    assert [skeleton.PARENTS[r] for r in skeleton.ROOTS] == [-1, -1]
    assert sum(p < 0 for p in skeleton.PARENTS) == 2


def test_bones_chain_each_finger_from_the_wrist_to_the_tip():
    assert len(skeleton.BONES) == 40
    for hand, wrist in enumerate(skeleton.ROOTS):
        for finger in range(5):
            tip = hand * 21 + 4 * finger
            chain = [tip]
            while skeleton.PARENTS[chain[-1]] >= 0:
                chain.append(skeleton.PARENTS[chain[-1]])
            assert chain == [tip, tip + 1, tip + 2, tip + 3, wrist]
            assert skeleton.FINGER_OF_JOINT[tip] == skeleton.FINGERS[finger]


def test_flip_index_swaps_the_hands_and_is_an_involution():
    flip = skeleton.FLIP_INDEX
    assert list(flip) == list(range(21, 42)) + list(range(21))
    assert [flip[flip[k]] for k in range(42)] == list(range(42))
    for k in range(42):
        assert skeleton.JOINT_NAMES[k][2:] == skeleton.JOINT_NAMES[flip[k]][2:]


def test_every_joint_has_a_colour_and_fingers_differ():
    colours = {skeleton.joint_color(k) for k in range(42)}
    assert len(colours) == 6
    assert skeleton.joint_color(0) == skeleton.joint_color(21) == skeleton.FINGER_COLORS["thumb"]
