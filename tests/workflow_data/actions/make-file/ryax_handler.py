import tempfile
from pathlib import Path


def handle(inputs):
    d = Path(tempfile.mkdtemp())
    f = d / "data.txt"
    f.write_text(f"payload {inputs['n']}\n" * 100)
    sub = d / "folder"
    sub.mkdir()
    (sub / "a.txt").write_text("a")
    (sub / "b.txt").write_text("bb")
    return {"data": str(f), "folder": str(sub)}
