import time


def handle(inputs):
    time.sleep(inputs["seconds"])
    return {"slept": inputs["seconds"]}
