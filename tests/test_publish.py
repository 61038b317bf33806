"""The workflow that publishes the book builds it as `make book` does and deploys that site."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_builds_with_make_book_and_deploys_the_built_site() -> None:
    workflow = load()
    # PyYAML reads the key "on" as True (YAML 1.1).
    triggers = workflow.get("on", workflow.get(True))
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    runs = [step["run"] for step in build["steps"] if "run" in step]
    assert len(runs) == 1 and runs[0].startswith("make book")
    uses = {step.get("uses", "").split("@")[0]: step for step in build["steps"]}
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "book/_build/html"
    assert {"actions/checkout", "actions/setup-python", "actions/setup-node"} <= set(uses)
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert deploy["steps"][0]["uses"].startswith("actions/deploy-pages@")


def test_the_repository_address_lives_only_in_the_book_config() -> None:
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    address = config["repository"]["url"]
    assert address.startswith("https://github.com/")
    assert address.removeprefix("https://") not in WORKFLOW.read_text()
    assert "github.com/" not in WORKFLOW.read_text()
