from dataclasses import dataclass


@dataclass
class RyaxException(Exception):
    message: str
    code: int


def handle(inputs):
    if inputs["n"] % 2:
        raise RyaxException(message=f"odd number {inputs['n']}", code=422)
    return {"n": inputs["n"]}
