import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from workers.core.errors import Reason
from workers.core.schemas import SCHEMAS

NAMES = [
    "audio.chunk.headers",
    "listening.event",
    "audio.features",
    "prediction.anomaly",
    "prediction.popularity",
    "prediction.accounts",
    "prediction.tracks",
    "prediction.tags",
    "prediction.recommendations",
    "recommend.request",
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


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_fast_and_reference_validators_agree(name: str, data: st.DataObject) -> None:
    """The compiled validator (hot path) and jsonschema accept exactly the same inputs."""
    example = dict(SCHEMAS.schema(name)["examples"][0])
    fields = st.sampled_from([*example, "extra"])
    changes = data.draw(st.dictionaries(fields, json_values, max_size=3))
    instance = {**example, **changes}
    reference = SCHEMAS.validators[name].is_valid(instance)
    try:
        SCHEMAS._fast[name](instance)
        fast = True
    except fastjsonschema.JsonSchemaValueException:
        fast = False
    assert fast == reference, instance
