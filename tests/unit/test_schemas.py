import fastjsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from workers.core.errors import Reason, Rejected
from workers.core.listening import parse_event
from workers.core.recommend import parse_request
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


@settings(max_examples=200, deadline=None)
@given(
    schema_id=st.integers(0, 2**32 - 1),
    user=st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True),
    played=st.integers(0, 10_000_000),
)
def test_schema_registry_frames_decode_as_the_plain_json(
    schema_id: int, user: str, played: int
) -> None:
    """A value framed by Confluent's JSON Schema serializer (magic byte 0, a 4-byte
    big-endian schema id, the JSON) is the same event as the plain JSON, whatever the id."""
    body = {
        "event_id": "e1",
        "tenant": "acme",
        "user_id": user,
        "track_id": "t1",
        "ts": 1_764_000_000_000,
        "type": "play",
        "ms_played": played,
    }
    plain = orjson.dumps(body)
    frame = bytes([0]) + schema_id.to_bytes(4, "big")
    key = f"acme/{user}".encode()
    now = 1_764_000_000_000
    assert parse_event(frame + plain, key=key, now_ms=now) == parse_event(
        plain, key=key, now_ms=now
    )
    request = orjson.dumps({"request_id": "q1", "tenant": "acme", "user_id": user, "k": 5})
    assert parse_request(frame + request, key=b"acme/q1") == parse_request(request, key=b"acme/q1")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (bytes([0, 0, 0, 0, 1]), Reason.MALFORMED_JSON),  # a frame and nothing after it
        (bytes([0, 0, 0]), Reason.MALFORMED_JSON),  # too short to be a frame: not JSON
        (bytes([0, 0, 0, 0, 1]) + b'{"tenant": "acme"}', Reason.SCHEMA_INVALID),
    ],
)
def test_a_frame_without_a_valid_event_is_one_dead_letter_reason(
    value: bytes, reason: Reason
) -> None:
    with pytest.raises(Rejected) as caught:
        parse_event(value, key=b"acme/u", now_ms=1_764_000_000_000)
    assert caught.value.reason == reason
