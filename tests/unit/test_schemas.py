import pytest
from jsonschema import Draft202012Validator

from workers.errors import Reason
from workers.schemas import SCHEMAS

NAMES = [
    "audio.chunk.headers",
    "listening.event",
    "audio.features",
    "prediction.anomaly",
    "prediction.popularity",
    "deadletter.headers",
]


def test_every_contract_schema_exists() -> None:
    assert sorted(SCHEMAS.validators) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_2020_12_and_versioned(name: str) -> None:
    schema = SCHEMAS.schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert ":v1:" in schema["$id"]


@pytest.mark.parametrize("name", NAMES)
def test_examples_validate(name: str) -> None:
    examples = SCHEMAS.schema(name)["examples"]
    assert examples
    for example in examples:
        assert SCHEMAS.first_error(name, example) is None


def test_deadletter_reasons_match_the_code() -> None:
    codes = SCHEMAS.schema("deadletter.headers")["properties"]["error"]["enum"]
    assert sorted(codes) == sorted(r.value for r in Reason)


def test_first_error_names_the_field() -> None:
    error = SCHEMAS.first_error(
        "listening.event",
        {
            "event_id": "e",
            "tenant": "acme",
            "user_id": "u",
            "track_id": "t",
            "type": "play",
            "ts": 1,
        },
    )
    assert error is not None and "ms_played" in error
