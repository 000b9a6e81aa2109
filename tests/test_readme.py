"""The README's commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```bash\n{ci_command}\n```" in readme


def test_readme_opens_with_the_demo_command():
    readme = (ROOT / "README.md").read_text()
    assert readme.index("rplacevit demo") < readme.index("python -m pytest")
