"""CI runs the evaluate page test: `.ci/run` installs Chromium when it is missing, and CI=true turns a missing
browser into a failure. `.ci/run` runs here for real, with `make`, `apt-get`, `sudo` and `id` replaced by stubs
that log their arguments (nothing is installed)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import chromium_path

ROOT = Path(__file__).resolve().parent.parent


def test_a_missing_browser_fails_in_ci_and_skips_for_a_user(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on it
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI"):
        chromium_path()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium chromium-driver"):
        chromium_path()
    (tmp_path / "chromium").write_text("#!/bin/sh\n")
    (tmp_path / "chromium").chmod(0o755)
    monkeypatch.setenv("CI", "true")
    assert chromium_path() == str(tmp_path / "chromium")


def stub(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(f"#!/bin/bash\n{body}\n")
    (folder / name).chmod(0o755)


@pytest.mark.parametrize(("uid", "has_chromium"), [(0, False), (1000, False), (0, True)])
def test_ci_run_installs_chromium_only_when_missing_and_sudo_only_when_not_root(tmp_path, uid, has_chromium):
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    for tool in ("dirname",):
        os.symlink(shutil.which(tool), bin_dir / tool)
    stub(bin_dir, "id", f"echo {uid}")
    stub(bin_dir, "make", f'echo "make $* CI=$CI" >> {log}')
    stub(bin_dir, "apt-get", f'echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> {log}')
    stub(bin_dir, "sudo", f'echo "sudo" >> {log}; exec "$@"')
    stub(bin_dir, "env", f'exec {shutil.which("env")} "$@"')
    if has_chromium:
        stub(bin_dir, "chromium", "exit 0")
    environment = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    result = subprocess.run([shutil.which("bash"), str(ROOT / ".ci" / "run")], env=environment, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    if has_chromium:
        assert calls == ["make test CI=true", "make test-ray CI=true"]
        return
    sudo = ["sudo"] if uid else []
    assert calls == [*sudo, "apt-get update -qq DEBIAN_FRONTEND=", *sudo,
                     "apt-get install -y -qq --no-install-recommends chromium chromium-driver DEBIAN_FRONTEND=noninteractive",
                     "make test CI=true", "make test-ray CI=true"]
