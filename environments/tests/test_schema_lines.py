"""Each problem of a schema document is placed at the line of the key it is about."""

import json

from environments.schema import SchemaProblem
from environments.schema_lines import line_of, located_problems

TEXT = json.dumps(
    {
        "data_types": {
            "workers": {"fields": {"name": {"type": "string"}}},
            "patients": {"fields": {"name": {"type": "strin"}, "status": {"type": "choice"}}},
        }
    },
    indent=2,
)


def test_a_field_problem_is_at_its_field_inside_its_data_type():
    # `name` is a field of workers too: the line is the one inside patients.
    assert TEXT.splitlines()[line_of(TEXT, SchemaProblem("patients", "name", "x")) - 1].strip() == '"name": {'
    assert line_of(TEXT, SchemaProblem("patients", "name", "x")) == 12
    assert line_of(TEXT, SchemaProblem("patients", None, "x")) == 10


def test_every_problem_of_a_document_is_listed_in_line_order():
    located = located_problems(TEXT, json.loads(TEXT))
    assert [str(each) for each in located] == [
        'line 12: data type "patients", field "name": unknown type "strin"; expected one of boolean, choice, date, '
        "datetime, email, integer, number, string, text",
        'line 15: data type "patients", field "status": a choice field needs "choices": a non-empty list of strings',
    ]


def test_a_problem_about_no_key_in_the_text_is_at_line_one():
    text = json.dumps({"data_types": {"workers": {"fields": {"name": {"type": "string"}}}}}, indent=2)
    [located] = located_problems(text, json.loads(text))
    assert str(located) == 'line 1: data type "patients": the built-in data type is missing'
