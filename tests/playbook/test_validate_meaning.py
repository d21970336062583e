"""Issue 12's table: each ordinary mistake is caught by `recover validate` with
a specific message, its position, its JSON path, a fix and a rule id, and
without follow-on errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import invoke, pos

WritePlaybook = Callable[..., Path]

BASE = """\
version: 1
name: table
params:
  volume: {type: string, default: VOL0002, description: the damaged volume}
  day: {type: string, default: "2026-02-01", description: a day}
site: {root: site, catalog: catalog.sqlite}
safety:
  allow_loss: {objects: 60}
steps:
  - id: scan
    action: archive.scan_volume
    args: {volume: "{{ volume }}"}
  - id: mark
    action: archive.mark_affected_locations
    args: {volume: "{{ volume }}", ranges: scanned}
  - id: attempt
    action: archive.recovery_attempt
    args: {volume: "{{ volume }}", batches: all}
  - id: unload
    action: archive.unload
    args: {volume: "{{ volume }}"}
    when: "{{ steps.attempt.outputs.remaining_studies == 0 }}"
  - id: clean_up
    action: archive.clean_up
    args: {volume: "{{ volume }}"}
"""


def _validate(path: Path, *options: str) -> tuple[int, list[dict[str, Any]]]:
    result = invoke("validate", "--format", "json", *options, path)
    assert "Traceback" not in result.output
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return result.exit_code, found


def _only_error(write_playbook: WritePlaybook, old: str, new: str) -> tuple[str, dict[str, Any]]:
    """The playbook with one mistake, and the one error validate reports for it."""
    assert old in BASE
    text = BASE.replace(old, new, 1)
    code, found = _validate(write_playbook(text))
    errors = [d for d in found if d["severity"] == "error"]
    assert code == 1 and len(errors) == 1, errors
    return text, errors[0]


def _at(text: str, needle: str, diagnostic: dict[str, Any], nth: int = 1) -> None:
    assert (diagnostic["line"], diagnostic["col"]) == pos(text, needle, nth), diagnostic


def test_the_base_playbook_is_valid(write_playbook: WritePlaybook) -> None:
    code, found = _validate(write_playbook(BASE), "--strict")
    assert code == 0 and found == []


def test_an_output_name_that_does_not_exist(write_playbook: WritePlaybook) -> None:
    text, d = _only_error(write_playbook, "outputs.remaining_studies", "outputs.remaining")
    assert d["rule"] == "R209" and d["rule_name"] == "unknown-output"
    assert "archive.recovery_attempt has no output 'remaining'" in d["message"]
    assert d["fix"].startswith("did you mean 'remaining_studies'?")
    assert d["path"] == "$.steps[3].when"
    _at(text, "steps.attempt.outputs.remaining", d)


def test_a_step_field_that_does_not_exist(write_playbook: WritePlaybook) -> None:
    text, d = _only_error(write_playbook, "steps.attempt.outputs", "steps.attempt.output")
    assert d["rule"] == "R209" and "a step has no 'output'" in d["message"]
    assert d["fix"].startswith("did you mean 'outputs'?")
    _at(text, "steps.attempt.output", d)


def test_a_loss_unit_that_does_not_exist(write_playbook: WritePlaybook) -> None:
    text, d = _only_error(write_playbook, "{objects: 60}", "{object: 60}")
    assert d["rule"] == "R211" and "unknown loss unit 'object'" in d["message"]
    assert d["fix"] == "did you mean 'objects'?"
    assert d["path"] == "$.safety.allow_loss.object"
    _at(text, "object: 60", d)


def test_a_count_below_the_minimum_names_every_form(write_playbook: WritePlaybook) -> None:
    text, d = _only_error(write_playbook, "batches: all", "batches: 0")
    assert d["rule"] == "R105"
    assert "expected an integer >= 1, or 'all'; got integer 0" in d["message"]
    assert d["fix"] == "give an integer >= 1; or write 'all'"
    assert d["path"] == "$.steps[2].args.batches"
    _at(text, "0}\n  - id: unload", d)


@pytest.mark.parametrize(
    ("ranges", "example"),
    [('"90-150"', "[{begin: 90, end: 150}]"), ("{begin: 90, ned: 150}", "[{begin: 90, end: 150}]")],
)
def test_ranges_in_the_wrong_shape(
    write_playbook: WritePlaybook, ranges: str, example: str
) -> None:
    text, d = _only_error(write_playbook, "ranges: scanned", f"ranges: {ranges}")
    assert d["rule"] == "R105"
    assert "'scanned', or a list of {begin, end?} ranges" in d["message"]
    assert "null" not in d["message"]
    assert d["fix"] == f"write a list, e.g. {example}; or write 'scanned'"
    assert d["path"] == "$.steps[1].args.ranges"
    _at(text, ranges, d)


def test_a_negative_loss_budget(write_playbook: WritePlaybook) -> None:
    text, d = _only_error(write_playbook, "{objects: 60}", "{objects: -1}")
    assert d["rule"] == "R105"
    assert "a count >= 0, 'unlimited'" in d["message"] and "got integer -1" in d["message"]
    assert d["fix"].startswith("give a count >= 0; or write 'unlimited'")
    assert d["path"] == "$.safety.allow_loss.objects"
    _at(text, "-1", d)


def test_empty_args_where_one_of_several_is_needed(write_playbook: WritePlaybook) -> None:
    old = 'action: archive.unload\n    args: {volume: "{{ volume }}"}'
    text, d = _only_error(write_playbook, old, "action: archive.unload\n    args: {}")
    assert d["rule"] == "R102"
    assert d["message"] == "needs at least 1 of its keys: carriers or volume"
    assert d["fix"] == "add one of: carriers, volume"
    assert d["path"] == "$.steps[3].args"
    _at(text, "{}", d)


def test_empty_args_where_one_is_required(write_playbook: WritePlaybook) -> None:
    old = 'action: archive.scan_volume\n    args: {volume: "{{ volume }}"}'
    _, d = _only_error(write_playbook, old, "action: archive.scan_volume\n    args: {}")
    assert d["message"] == "missing required key 'volume'" and d["fix"] == "add `volume:` here"
    assert d["path"] == "$.steps[0].args"


def test_a_param_type_written_the_python_way(write_playbook: WritePlaybook) -> None:
    text, d = _only_error(write_playbook, "volume: {type: string", "volume: {type: int")
    assert d["rule"] == "R104" and "'int' is not one of the allowed values" in d["message"]
    assert d["fix"].startswith("did you mean 'integer'?")
    assert d["path"] == "$.params.volume.type"
    _at(text, "int,", d)  # and no "used but not declared" for its uses: one error only


def test_an_unknown_action_hides_nothing_else_and_adds_nothing(
    write_playbook: WritePlaybook,
) -> None:
    text, d = _only_error(
        write_playbook, "action: archive.recovery_attempt", "action: archive.recovery_attempts"
    )
    assert d["rule"] == "R201" and d["fix"] == "did you mean 'archive.recovery_attempt'?"
    assert d["path"] == "$.steps[2].action"  # the later `when:` on steps.attempt is fine
    _at(text, "archive.recovery_attempts", d)


def test_an_unknown_filter_gets_did_you_mean_and_no_jinja_internals(
    write_playbook: WritePlaybook,
) -> None:
    old = 'scan_volume\n    args: {volume: "{{ volume }}"}'
    new = 'scan_volume\n    args: {volume: "{{ volume | lowercase }}"}'
    text, d = _only_error(write_playbook, old, new)
    assert d["rule"] == "R206" and d["message"] == "unknown filter 'lowercase'"
    assert d["fix"] == "did you mean 'lower'?"
    assert d["path"] == "$.steps[0].args.volume"
    _at(text, "lowercase", d)
    result = invoke("validate", write_playbook(text))
    assert "introspection" not in result.output and 'File "' not in result.output


def test_an_unknown_test_gets_did_you_mean(write_playbook: WritePlaybook) -> None:
    _, d = _only_error(write_playbook, "remaining_studies == 0", "remaining_studies is evn")
    assert d["message"] == "unknown test 'evn'" and d["fix"] == "did you mean 'even'?"


def test_a_typo_in_a_step_name(write_playbook: WritePlaybook) -> None:
    text, d = _only_error(write_playbook, "steps.attempt.", "steps.atempt.")
    assert d["rule"] == "R208" and d["message"] == "`steps.atempt` names no step"
    assert d["fix"] == "did you mean 'attempt'?"
    assert d["path"] == "$.steps[3].when"
    _at(text, "steps.atempt", d)


def test_a_reference_to_a_later_step(write_playbook: WritePlaybook) -> None:
    text, d = _only_error(write_playbook, "steps.attempt.outputs", "steps.clean_up.outputs")
    assert d["rule"] == "R208"
    assert "`steps.clean_up` is a later step (step 5)" in d["message"]
    assert "before this one" in d["fix"] and "attempt" in d["fix"]
    _at(text, "steps.clean_up", d)


def test_an_output_of_the_wrong_type_for_its_argument(write_playbook: WritePlaybook) -> None:
    old = 'action: archive.recovery_attempt\n    args: {volume: "{{ volume }}", batches: all}'
    new = (
        "action: archive.recovery_attempt\n"
        '    args: {volume: "{{ volume }}", max_jobs: "{{ steps.mark.outputs.marked }}", '
        'cache_host: "{{ steps.scan.outputs.ranges }}"}'
    )
    text, d = _only_error(write_playbook, old, new)  # marked (integer) fits max_jobs
    assert d["rule"] == "R210"
    assert d["message"] == "`steps.scan.outputs.ranges` is a list, but 'cache_host' takes a string"
    assert "recover actions archive.scan_volume" in d["fix"]
    assert d["path"] == "$.steps[2].args.cache_host"
    _at(text, '"{{ steps.scan', d)


def test_a_param_without_default_of_the_wrong_type_for_its_argument(
    write_playbook: WritePlaybook,
) -> None:
    text = BASE.replace(
        "  day:", "  jobs: {type: list, description: no default}\n  day:", 1
    ).replace("batches: all}", 'batches: all, max_jobs: "{{ jobs }}"}', 1)
    code, found = _validate(write_playbook(text))
    (d,) = [d for d in found if d["severity"] == "error"]
    assert code == 1 and d["rule"] == "R210"
    assert d["message"] == "param 'jobs' is declared list, but 'max_jobs' takes an integer"
    assert d["fix"] == "declare 'jobs' with the type 'max_jobs' takes"
    assert d["path"] == "$.steps[2].args.max_jobs"
    _at(text, '"{{ jobs }}"', d)


def test_an_unquoted_expression(write_playbook: WritePlaybook) -> None:
    text = BASE.replace('args: {volume: "{{ volume }}"}', "args:\n      volume: {{ volume }}", 1)
    path = write_playbook(text)
    code, found = _validate(path)
    assert code == 1 and len(found) == 1
    d = found[0]
    assert d["rule"] == "R001" and "unquoted {{" in d["message"]
    assert d["fix"] == 'put a value that starts with {{ in quotes: volume: "{{ volume }}"'
    _at(text, "{{ volume }}\n", d)
    shown = invoke("validate", path).stdout
    line = d["line"]
    assert f"  {line} |       volume: {{{{ volume }}}}\n" in shown  # the code frame
    assert "\n" + " " * (len(f"  {line} | ") + d["col"] - 1) + "^\n" in shown


def test_a_tab(write_playbook: WritePlaybook) -> None:
    text = BASE.replace("    action: archive.scan_volume", "\taction: archive.scan_volume", 1)
    code, found = _validate(write_playbook(text))
    (d,) = found
    assert code == 1 and d["rule"] == "R001" and "tab" in d["message"]
    assert d["fix"].startswith("use spaces, not tabs")
    assert d["line"] == pos(text, "\taction")[0]


def test_a_line_indented_one_step_too_far(write_playbook: WritePlaybook) -> None:
    text = BASE.replace(
        '    args: {volume: "{{ volume }}", batches: all}',
        '      args: {volume: "{{ volume }}", batches: all}',
        1,
    )
    code, found = _validate(write_playbook(text))
    (d,) = found
    assert code == 1 and d["rule"] == "R001"
    assert "indented more than the key above it (6 spaces, not 4)" in d["message"]
    assert d["fix"].startswith(f"indent line {d['line']} like the key above it (4 spaces)")
    _at(text, 'args: {volume: "{{ volume }}", batches', d)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('version: 1\nname: "unclosed\nsteps: []\n', "the quote opened at line 2, column 7"),
        ("version: 1\nname: t\nsteps: [1, 2\nsafety: {}\n", "the [ opened at line 3"),
    ],
)
def test_an_unclosed_quote_or_bracket(
    write_playbook: WritePlaybook, text: str, message: str
) -> None:
    code, (d,) = _validate(write_playbook(text))
    assert code == 1 and message in d["message"] and d["fix"].startswith("close")


def test_an_impossible_date(write_playbook: WritePlaybook) -> None:
    text = BASE.replace('default: "2026-02-01"', "default: 2026-02-30", 1)
    code, (d,) = _validate(write_playbook(text))
    assert code == 1 and d["rule"] == "R003" and "'2026-02-30' looks like a date" in d["message"]
    assert d["path"] == "$.params.day.default"
    assert d["fix"] == (
        'the last day of 2026-02 is 2026-02-28; or quote it to keep it as text: "2026-02-30"'
    )
    _at(text, "2026-02-30", d)


# -- warnings ----------------------------------------------------------------------


def test_warnings_pass_unless_strict(write_playbook: WritePlaybook) -> None:
    text = (
        BASE.replace("  allow_loss: {objects: 60}\n", "  allow_loss: {}\n")
        .replace(", description: a day}", "}")
        .replace(
            '    args: {volume: "{{ volume }}", ranges: scanned}',
            '    args: {volume: "{{ volume }}", ranges: scanned}\n    when: true',
        )
    )
    path = write_playbook(text)
    code, found = _validate(path)
    assert code == 0
    rules = {d["rule"]: d for d in found}
    assert set(rules) == {"W301", "W302", "W303"} and all(d["severity"] == "warning" for d in found)
    assert "can lose objects" in rules["W301"]["message"]
    assert rules["W301"]["path"] == "$.steps[4].action"
    assert "`objects: N` under safety.allow_loss" in rules["W301"]["fix"]
    assert rules["W302"]["path"] == "$.params.day"
    assert rules["W303"]["path"] == "$.steps[1].when"
    assert _validate(path, "--strict")[0] == 1
    text_out = invoke("validate", path)
    assert text_out.exit_code == 0 and f"{path}: ok (3 warning(s))" in text_out.stdout
    assert "warning W301 no-loss-budget:" in text_out.stdout


def test_a_budget_for_a_unit_no_step_here_loses_is_a_warning(
    write_playbook: WritePlaybook,
) -> None:
    code, found = _validate(
        write_playbook(BASE.replace("{objects: 60}", "{objects: 60, files: 3}"))
    )
    assert code == 0 and [d["rule"] for d in found] == ["W304"]
    assert found[0]["path"] == "$.safety.allow_loss.files"


@pytest.mark.parametrize(
    ("text", "line", "fix"),
    [
        ("version: 1\nname: a: b\n", 2, 'put the value in quotes: name: "a: b"'),
        ("version: 1\nname\nsteps: []\n", 2, "write `key: value`, with a space after"),
        ("version: 1\n--- 2\n", 2, "keep one document per playbook"),
        ("version: 1\nname: *nowhere\n", 2, "define the anchor (`&name`)"),
    ],
)
def test_other_syntax_errors_get_their_own_fix(
    write_playbook: WritePlaybook, text: str, line: int, fix: str
) -> None:
    code, (d,) = _validate(write_playbook(text))
    assert code == 1 and d["rule"] == "R001" and d["line"] == line
    assert d["fix"].startswith(fix), d
