"""Command line: ``python -m minternet VERB ...`` (or the ``minternet`` script).

Verbs: ``synth`` writes a synthetic InterHand2.6M tree.
``eval`` scores a checkpoint (or the codec's oracle) with InterHand2.6M's test metrics.
``train`` trains InterNet (also under ``torchrun``).
``predict`` finds both hands' 2D and 3D joints in images with a trained InterNet.
``download`` fetches, checks and unpacks the real InterHand2.6M v1.0 (5 fps).

Arguments are checked as they are parsed. An error in what a user gave (a file, a field, an
argument) ends the verb with one line naming it and exit status 2; an internal error keeps
its traceback. The verbs' parsers are in :mod:`minternet.cli_data` (synth, download) and
:mod:`minternet.cli_model` (train, eval, predict).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from minternet.cli_data import add_download, add_synth
from minternet.cli_model import add_eval, add_predict, add_train


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minternet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    add_synth(sub)
    add_eval(sub)
    add_train(sub)
    add_download(sub)
    add_predict(sub)
    args = parser.parse_args(argv)
    from minternet.archive import ArchiveError
    from minternet.fetching import DownloadError

    try:
        return args.run(args)
    except (ValueError, OSError, ArchiveError, DownloadError) as err:
        # What a user gave is wrong (a file, a field, an argument): one line naming it.
        print(f"minternet {args.verb}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
