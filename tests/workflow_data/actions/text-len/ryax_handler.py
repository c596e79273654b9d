def handle(inputs):
    return {"length": len(inputs["text"]), "upper": inputs["text"].upper()}
