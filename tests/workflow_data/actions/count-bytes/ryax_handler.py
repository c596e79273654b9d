from pathlib import Path


def handle(inputs):
    size = Path(inputs["data"]).stat().st_size
    if inputs.get("folder"):
        size += sum(p.stat().st_size for p in Path(inputs["folder"]).rglob("*") if p.is_file())
    return {"size": size}
