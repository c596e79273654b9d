"""Pack a directory into a tar.gz or zip archive."""

import shutil
import tempfile
from pathlib import Path


def handle(inputs: dict) -> dict:
    src = Path(inputs["directory"])
    out_dir = Path(tempfile.mkdtemp(prefix="dir-archive-"))
    fmt = "gztar" if inputs["format"] == "tar.gz" else "zip"
    archive = shutil.make_archive(str(out_dir / src.name), fmt, root_dir=src)
    return {"archive": archive, "files": sum(1 for p in src.rglob("*") if p.is_file())}
