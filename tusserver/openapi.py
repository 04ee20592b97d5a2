def openapi_document() -> dict:
    return {"openapi": "3.1.0"}
