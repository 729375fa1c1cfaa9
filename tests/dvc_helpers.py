# Helpers shared by the DVC tests (test_dvc, test_dvc_flows): sh(cmd, cwd) runs a command with a fixed git
# identity and the venv first on PATH (DVC_ROOT cleared), copy_repo(src, dst) copies the files git sees,
# ci_copy(src, dst, *overlays) makes a committed copy without dvc.lock on the ci overlay (then each YAML text),
# processes_under(folder) lists the pids whose working directory lies in folder (queue workers, stages).
import os, shutil, subprocess, sys
from pathlib import Path
GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid",
          "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t.invalid"}
def env() -> dict:
    out = os.environ | GIT_ID | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out.pop("DVC_ROOT", None)
    return out

def sh(cmd, cwd, timeout: float = 900) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr

def copy_repo(src: Path, dst: Path) -> Path:
    cmd = ["git", "ls-files", "-co", "--exclude-standard"]
    listed = subprocess.run(cmd, cwd=src, capture_output=True, text=True).stdout.split()
    for rel in listed:
        if (src / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dst / rel)
    return dst

def ci_copy(src: Path, dst: Path, *overlays: str) -> Path:
    """A committed git copy of src without dvc.lock, params merged with overlays/ci.yaml then each overlay text."""
    repo = copy_repo(src, dst)
    (repo / "dvc.lock").unlink(missing_ok=True)
    sh(["python", "-m", "hildanext", "apply-overlay", "overlays/ci.yaml"], repo)
    for i, text in enumerate(overlays):
        (repo / f"overlay{i}.yaml").write_text(text)
        sh(["python", "-m", "hildanext", "apply-overlay", f"overlay{i}.yaml"], repo)
    sh(["git", "init", "-q"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "copy"], repo)
    return repo

def processes_under(folder: Path) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if cwd.is_relative_to(folder.resolve()):
            found.append(int(proc.name))
    return found
