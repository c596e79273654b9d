def handle(inputs):
    print(f"adding {inputs['plus']} to {inputs['x']}")
    return {"y": inputs["x"] + inputs["plus"]}
