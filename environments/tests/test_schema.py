"""A schema document is checked before it is published, with errors that say where and what."""

import copy

import pytest

from environments.demo import DEMO_SCHEMA
from environments.schema import SchemaInvalid, validate_record_changes, validate_record_data, validate_schema


def problems_of(document) -> list[str]:
    with pytest.raises(SchemaInvalid) as caught:
        validate_schema(document)
    return [str(problem) for problem in caught.value.problems]


def test_the_demo_schema_is_valid():
    validate_schema(DEMO_SCHEMA)


def test_built_in_data_types_are_required():
    document = {"data_types": {"assessments": DEMO_SCHEMA["data_types"]["assessments"]}}
    assert problems_of(document) == [
        'data type "patients": the built-in data type is missing',
        'data type "workers": the built-in data type is missing',
    ]


def test_an_unknown_field_type_names_the_data_type_and_field():
    document = copy.deepcopy(DEMO_SCHEMA)
    document["data_types"]["patients"]["fields"]["birth_date"]["type"] = "dat"
    assert problems_of(document) == [
        'data type "patients", field "birth_date": unknown type "dat"; '
        "expected one of boolean, choice, date, datetime, email, integer, number, string, text"
    ]


def test_every_problem_is_reported_at_once():
    document = copy.deepcopy(DEMO_SCHEMA)
    fields = document["data_types"]["workers"]["fields"]
    fields["role"] = {"type": "choice"}
    fields["name"]["max_length"] = 0
    fields["Bad Name"] = {"type": "string"}
    assert sorted(problems_of(document)) == [
        'data type "workers", field "Bad Name": the name must start with a lowercase letter '
        "and use only a-z, 0-9 and _ (63 at most)",
        'data type "workers", field "name": "max_length" must be a positive integer',
        'data type "workers", field "role": a choice field needs "choices": a non-empty list of strings',
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], 'the schema must be a JSON object with a "data_types" key'),
        ({"data_types": []}, '"data_types" must be an object mapping data type names to definitions'),
        ({"data_types": {}, "extra": 1}, "unknown top-level key(s): extra"),
    ],
)
def test_the_document_shape_is_checked(document, message):
    assert message in problems_of(document)


def test_options_that_do_not_apply_to_the_type_are_refused():
    document = copy.deepcopy(DEMO_SCHEMA)
    document["data_types"]["assessments"]["fields"]["score"]["max_length"] = 3
    document["data_types"]["patients"]["fields"]["first_name"]["minimum"] = 1
    assert sorted(problems_of(document)) == [
        'data type "assessments", field "score": "max_length" applies only to string and text fields',
        'data type "patients", field "first_name": "minimum" applies only to integer and number fields',
    ]


def test_a_data_type_without_fields_is_refused():
    document = copy.deepcopy(DEMO_SCHEMA)
    document["data_types"]["visits"] = {"label": "Visits", "fields": {}}
    assert problems_of(document) == ['data type "visits": "fields" must be a non-empty object']


class TestRecordData:
    def test_valid_data_has_no_errors(self):
        data = {"first_name": "Ada", "last_name": "Lovelace", "birth_date": "1815-12-10", "status": "active"}
        assert validate_record_data(DEMO_SCHEMA, "patients", data) == {}

    def test_each_bad_field_gets_its_own_message(self):
        data = {"first_name": 7, "birth_date": "10/12/1815", "status": "asleep", "shoe_size": 42}
        assert validate_record_data(DEMO_SCHEMA, "patients", data) == {
            "first_name": "must be a string",
            "last_name": "this field is required",
            "birth_date": "must be a date as YYYY-MM-DD",
            "status": "must be one of active, discharged",
            "shoe_size": "unknown field",
        }

    def test_numbers_respect_their_bounds_and_booleans_are_not_numbers(self):
        assert validate_record_data(DEMO_SCHEMA, "assessments", {"patient_id": "p", "score": 28}) == {
            "score": "must be at most 27"
        }
        assert validate_record_data(DEMO_SCHEMA, "assessments", {"patient_id": "p", "score": True}) == {
            "score": "must be an integer"
        }

    def test_partial_data_may_leave_out_required_fields(self):
        assert validate_record_changes(DEMO_SCHEMA, "patients", {"status": "discharged"}) == {}

    def test_an_unknown_data_type_is_an_error(self):
        assert validate_record_data(DEMO_SCHEMA, "visits", {}) == {"": 'unknown data type "visits"'}

    def test_strings_respect_max_length(self):
        data = {"first_name": "A" * 101, "last_name": "L"}
        assert validate_record_data(DEMO_SCHEMA, "patients", data) == {
            "first_name": "must be at most 100 characters (got 101)"
        }

    def test_emails_and_datetimes_are_checked(self):
        assert validate_record_data(DEMO_SCHEMA, "workers", {"name": "W", "email": "not-an-email"}) == {
            "email": "must be an email address"
        }
        assert validate_record_data(DEMO_SCHEMA, "assessments", {"patient_id": "p", "completed_at": "yesterday"}) == {
            "completed_at": "must be an ISO 8601 date and time"
        }
