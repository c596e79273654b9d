import json


async def run(service, input_values):
    for answer in json.loads(input_values["submissions"]):
        await service.create_run(answer)
