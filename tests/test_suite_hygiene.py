"""No test that cannot fail: every test function asserts something, or
hands its checks to something that does (listed here, each with why)."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# Calls that fail the test when what they check is wrong.
ASSERTING_CALLS = {
    "raises",  # pytest.raises
    "fail",  # pytest.fail
    "skip",  # pytest.skip, with its reason
    "error_of",  # conftest: the API's error envelope and status
    "wait_for",  # tests.receiver: raises when the requests do not come
    "call_and_validate",  # schemathesis: raises on a failed check
    "max_statements",  # conftest: fails over the query budget
    "django_assert_max_num_queries",
    "django_assert_num_queries",
    # Playwright's expect(…): waits, then fails the test.
    "to_have_text",
    "not_to_have_text",
    "to_have_count",
    "to_be_visible",
    "to_contain_text",
    "not_to_contain_text",
    "to_have_url",
}


def _call_name(node: ast.AST) -> str:
    func = node.func if isinstance(node, ast.Call) else node
    if isinstance(func, ast.Attribute):
        return func.attr
    return getattr(func, "id", "")


def checks_something(function: ast.FunctionDef) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call) and _call_name(node) in ASSERTING_CALLS:
            return True
        if isinstance(node, ast.With):
            for item in node.items:
                if _call_name(item.context_expr) in ASSERTING_CALLS:
                    return True
    return False


def unchecked_tests(source: str, name: str = "<test>") -> list[str]:
    tree = ast.parse(source, filename=name)
    return [
        f"{name}:{node.lineno} {node.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and node.name.startswith("test_")
        and not checks_something(node)
    ]


def test_every_test_checks_something():
    found = []
    for path in sorted(TESTS.glob("test_*.py")):
        found += unchecked_tests(path.read_text(), path.name)
    assert found == []


def test_a_test_that_only_runs_code_is_found():
    source = (
        "def test_runs():\n    do_things()\n\n"
        "def test_asserts():\n    assert 1\n\n"
        "def test_raises():\n    with pytest.raises(ValueError):\n        int('x')\n"
    )
    assert unchecked_tests(source) == ["<test>:1 test_runs"]
