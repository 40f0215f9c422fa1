"""Checks an OpenAPI document with openapi-spec-validator, a validator independent of
countersign: `check_openapi.py FILE` exits 0 and prints `valid OpenAPI 3.1.x` when the
document is a valid OpenAPI 3.1 document, and fails with the validator's complaint
otherwise. tests/it/openapi.rs runs it on what `GET /v1/openapi.json` serves."""

import json
import sys

from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        document = json.load(f)
    validate(document, cls=OpenAPIV31SpecValidator)
    print(f"valid OpenAPI {document['openapi']}")


if __name__ == "__main__":
    main()
