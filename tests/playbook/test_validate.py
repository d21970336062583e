"""`recover validate`: every problem at once, at FILE:LINE:COL [json.path], with a fix."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.playbook.diagnostics import Diagnostic
from runner.playbook.validate import check_playbook, load_playbook
from runner.procedures import load_registry
from tests.helpers import PLAYBOOKS_DIR, TOY_PLAYBOOK, assert_clean, fix_line, invoke, pos

pytestmark = pytest.mark.usefixtures("toy_env")

WritePlaybook = Callable[..., Path]

ALL_PROBLEMS = """\
version: 1
name: all-problems
descripton: typo in a top-level key
params:
  batch: {type: integer, default: ten}
  steps: {type: string, default: x}
  volume: {type: string, default: VOL1}
site:
  root: site
  catalog: ../../outside.sqlite
  media: /var/media
  nul: "media/a\\0b"
steps:
  - id: offline
    action: toy.devise
    args: {online: false}
  - id: offline
    action: toy.device
    args: {online: false}
  - id: mark
    action: toy.mark
    args: {batc: 5, report: "{{ volum }}/r.txt"}
    when: "{{ steps.later.state == 'done' }}"
  - id: later
    action: toy.copy
    args: {src: "{{ ''.__class__ }}", dst: ../../etc/x}
    args: {}
  - id: unlucky
    action: toy.mark
    args: {batch: 13}
    acton: toy.mark
"""


def _diagnostics(path: Path) -> list[dict[str, Any]]:
    """The errors `validate --json` reports (warnings have their own tests)."""
    result = invoke("validate", "--json", path)
    assert result.exit_code == 1, result.output
    assert_clean(result)
    found: list[dict[str, Any]] = [d for d in json.loads(result.stdout) if d["severity"] == "error"]
    return found


def test_every_problem_is_reported_at_once_with_position_path_and_fix(
    write_playbook: WritePlaybook,
) -> None:
    text = ALL_PROBLEMS
    path = write_playbook(text)
    at = {(d["line"], d["col"], d["path"]): d for d in _diagnostics(path)}

    def expect(needle: str, json_path: str, message: str, fix: str, nth: int = 1) -> None:
        line, col = pos(text, needle, nth)
        entry = at.get((line, col, json_path))
        assert entry is not None, f"nothing at {line}:{col} {json_path}; got {sorted(at)}"
        assert message in entry["message"], entry
        assert entry["fix"] and fix in entry["fix"], entry
        assert entry["file"] == str(path)

    expect("descripton", "$.descripton", "unknown key 'descripton'", "did you mean 'description'")
    expect("ten", "$.params.batch.default", "declared integer", "integer default")
    expect("steps: {type", "$.params.steps", "reserved", "rename")
    expect("../../outside", "$.site.catalog", "leaves the site", "relative")
    expect("/var/media", "$.site.media", "absolute", "relative")
    expect('"media/a', "$.site.nul", "NUL", "relative")
    expect("toy.devise", "$.steps[0].action", "unknown action 'toy.devise'", "'toy.device'")
    expect("offline", "$.steps[1].id", "duplicate step id 'offline'", "own id", nth=2)
    expect("batc:", "$.steps[2].args.batc", "unknown key 'batc'", "did you mean 'batch'")
    expect("volum }}", "$.steps[2].args.report", "'volum' is used but not declared", "'volume'")
    expect("steps.later", "$.steps[2].when", "`steps.later`", "before this one")
    expect("\"{{ ''", "$.steps[3].args.src", "refused by the sandbox", "expression")
    expect("../../etc/x", "$.steps[3].args.dst", "leaves the site", "remove the '..' components")
    expect("args: {}", "$.steps[3].args", "duplicate key 'args'", "remove one")
    expect("acton", "$.steps[4].acton", "unknown key 'acton'", "did you mean 'action'")
    # the procedure's own cross-step rule (toy: batch 13 after toy.device)
    line, col = pos(text, "13}")
    assert at[(line, col, "$.steps[4].args.batch")]["message"] == "13 is unlucky"


def test_text_output_is_file_line_col_message_path_then_fix(
    write_playbook: WritePlaybook,
) -> None:
    text = "version: 1\nname: t\nsteps:\n  - id: a\n    action: toy.devise\n"
    path = write_playbook(text)
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}:5:13: error R201 unknown-action: unknown action 'toy.devise' [$.steps[0].action]",
        "  fix: did you mean 'toy.device'?",
    ]
    assert "1 problem(s) found" in result.stderr


def test_diagnostics_are_sorted_by_position(write_playbook: WritePlaybook) -> None:
    found = _diagnostics(write_playbook(ALL_PROBLEMS))
    keys = [(d["line"], d["col"]) for d in found]
    assert keys == sorted(keys)
    assert len(found) >= 16


def test_a_failing_expression_is_not_also_a_missing_key(write_playbook: WritePlaybook) -> None:
    text = (
        "version: 1\nname: t\nsteps:\n  - id: a\n    action: toy.copy\n"
        '    args: {src: "{{ \'\'.__class__ }}", dst: "{{ nope }}"}\n'
    )
    found = _diagnostics(write_playbook(text))
    assert [d["path"] for d in found] == ["$.steps[0].args.src", "$.steps[0].args.dst"]


@pytest.mark.parametrize("step_id", ["5", "[a]", "{a: 1}", "null", "true", "1.5"])
def test_a_non_string_step_id_is_reported_once(write_playbook: WritePlaybook, step_id: str) -> None:
    text = (
        "version: 1\nname: t\nsteps:\n"
        f"  - id: {step_id}\n    action: toy.device\n    args: {{online: false}}\n"
        "  - id: b\n    action: toy.device\n    args: {online: true}\n"
    )
    found = _diagnostics(write_playbook(text))
    assert [(d["line"], d["col"], d["path"]) for d in found] == [(4, 9, "$.steps[0].id")]
    assert "expected a string" in found[0]["message"]
    assert found[0]["fix"]


def test_a_step_with_a_bad_id_still_gets_its_other_checks(write_playbook: WritePlaybook) -> None:
    text = (
        "version: 1\nname: t\nsteps:\n"
        "  - id: 5\n    action: toy.devise\n"
        "  - id: [a]\n    action: toy.mark\n    args: {batch: 0}\n"
    )
    found = {d["path"] for d in _diagnostics(write_playbook(text))}
    assert found == {
        "$.steps[0].id",
        "$.steps[0].action",
        "$.steps[1].id",
        "$.steps[1].args.batch",
    }


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("version: 1\nname: t\nsteps: [\n", 4, 1, "YAML syntax error"),
        ("version: 1\nname: t\nsteps:\n\t- id: a\n", 4, 1, "YAML syntax error"),
        ("version: 1\n  name: t\n", 2, 3, "indented more than the key above"),
        ("", 1, 1, "must be a YAML mapping"),
        ("- a\n- b\n", 1, 1, "must be a YAML mapping"),
        ("just text\n", 1, 1, "must be a YAML mapping"),
        ("version: 1\nname: t\nsteps:\n  - foo\n", 4, 5, "expected a mapping, got string 'foo'"),
        ("version: 1\nname: t\nsteps:\n  - 42\n", 4, 5, "expected a mapping, got integer 42"),
        ("version: 1\nname: t\nsteps: {a: 1}\n", 3, 8, "expected a list, got mapping"),
        ("version: 1\nname: t\nsteps: run it\n", 3, 8, "expected a list, got string"),
        ("version: 1\nname: t\n", 1, 1, "missing required key 'steps'"),
        (
            "version: 1\nname: t\nsteps:\n  - id: a\n    action: toy.device\n    args: [1]\n",
            6,
            11,
            "expected a mapping, got list",
        ),
        (
            "version: 1\nname: t\nsteps:\n  - id: a\n    action: toy.device\n"
            "    args: {online: yes}\n    when: 5\n",
            7,
            11,
            "expected a string or a boolean, got integer 5",
        ),
    ],
)
def test_malformed_playbooks(
    write_playbook: WritePlaybook, text: str, line: int, col: int, message: str
) -> None:
    found = _diagnostics(write_playbook(text))
    assert any((d["line"], d["col"]) == (line, col) and message in d["message"] for d in found), (
        found
    )


def test_a_boolean_where_a_string_belongs_suggests_quotes(write_playbook: WritePlaybook) -> None:
    text = "version: 1\nname: t\nsteps:\n  - id: a\n    action: toy.copy\n"
    text += "    args: {src: no, dst: b}\n"
    (found,) = _diagnostics(write_playbook(text))
    assert found["path"] == "$.steps[0].args.src"
    assert "quotes" in found["fix"]


def test_a_param_used_with_a_value_of_the_wrong_type(write_playbook: WritePlaybook) -> None:
    text = (
        "version: 1\nname: t\nparams:\n  n: {type: string, default: many}\n"
        'steps:\n  - id: a\n    action: toy.mark\n    args: {batch: "{{ n }}"}\n'
    )
    (found,) = _diagnostics(write_playbook(text))
    assert (found["line"], found["col"], found["path"]) == (8, 19, "$.steps[0].args.batch")
    assert "expected an integer, got string 'many'" in found["message"]


def test_an_undeclared_param_without_a_close_match_says_how_to_declare(
    write_playbook: WritePlaybook,
) -> None:
    text = "version: 1\nname: t\nsteps:\n  - id: a\n    action: toy.copy\n"
    text += '    args: {src: "{{ zzz }}", dst: b}\n'
    found = _diagnostics(write_playbook(text))
    entry = next(d for d in found if "zzz" in d["message"])
    assert entry["message"] == "param 'zzz' is used but not declared"
    assert "declare it under params" in entry["fix"]


def test_an_unknown_action_far_from_any_name(write_playbook: WritePlaybook) -> None:
    text = "version: 1\nname: t\nsteps:\n  - id: a\n    action: zzz.qqq\n"
    (found,) = _diagnostics(write_playbook(text))
    assert found["message"] == "unknown action 'zzz.qqq'"
    assert "recover actions" in found["fix"]


def test_step_references_in_args_are_left_for_run_time(write_playbook: WritePlaybook) -> None:
    text = (
        "version: 1\nname: t\nsteps:\n  - id: a\n    action: toy.copy\n"
        "    args: {src: media/tape.bin, dst: out.bin}\n"
        "  - id: b\n    action: toy.mark\n"
        '    args: {batch: "{{ steps.a.outputs.size }}"}\n'
        "    when: \"{{ steps.a.state == 'done' }}\"\n"
    )
    playbook, found = check_playbook(write_playbook(text), load_registry())
    assert [d.code for d in found] == ["W301"] and playbook is not None  # toy.mark loses items
    assert [s.id for s in playbook.steps] == ["a", "b"]


def test_a_valid_playbook_loads_into_the_model(toy_playbook: Path) -> None:
    playbook = load_playbook(toy_playbook, load_registry())
    assert playbook.name == "toy-run"
    assert [(s.id, s.action) for s in playbook.steps] == [
        ("offline", "toy.device"),
        ("mark", "toy.mark"),
        ("copy", "toy.copy"),
    ]
    assert playbook.params["batch"].default == 10 and playbook.params["batch"].has_default
    assert playbook.locations() == {"catalog": "catalog.sqlite"}
    assert playbook.site_root() == toy_playbook.parent / "site"
    assert playbook.allow_loss == {"items": "{{ lossy }}"}
    result = invoke("validate", toy_playbook)
    assert result.exit_code == 0 and result.stdout == f"{toy_playbook}: ok\n"


def test_the_shipped_playbooks_are_valid() -> None:
    paths = sorted(PLAYBOOKS_DIR.glob("*.yaml"))
    assert len(paths) >= 4
    result = invoke("validate", *paths)
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": ok") == len(paths)


def test_several_files_are_checked_together(
    write_playbook: WritePlaybook, toy_playbook: Path
) -> None:
    bad = write_playbook("version: 1\nname: t\nsteps: []\n", "bad.yaml")
    result = invoke("validate", toy_playbook, bad, "missing.yaml")
    assert result.exit_code == 1
    assert f"{toy_playbook}: ok" in result.stdout
    assert f"{bad}:3:8: " in result.stdout
    assert "missing.yaml:1:1: error R004 not-a-playbook: playbook file not found [$]" in (
        result.stdout
    )
    assert "2 problem(s) found" in result.stderr


def test_an_unreadable_file(write_playbook: WritePlaybook) -> None:
    path = write_playbook("")
    path.write_bytes(b"\xff\xfe\x00not utf-8")
    (found,) = _diagnostics(path)
    assert found["message"] == "the playbook is not UTF-8 text: byte 0xff at line 1, column 1"
    assert found["fix"] == "save the playbook as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)"


@pytest.mark.parametrize(
    "text",
    [
        "version: 2\nname: t\nsteps:\n  - id: a\n    action: toy.device\n"
        "    args: {online: false}\n",
        "version: 1\nname: t\nsteps: []\n",
        "version: 1\nname: t\nsafety: {confirm: [a, a]}\nsteps:\n  - id: a\n"
        "    action: toy.device\n    args: {online: false}\n",
    ],
    ids=["const", "minItems", "uniqueItems"],
)
def test_every_diagnostic_has_a_fix(write_playbook: WritePlaybook, text: str) -> None:
    found = _diagnostics(write_playbook(text))
    assert found and all(d["fix"] for d in found), found


def test_a_bad_param_name_is_reported_where_it_is(write_playbook: WritePlaybook) -> None:
    text = (
        "version: 1\nname: t\nparams:\n  good: {type: string}\n  1bad: {type: string}\n"
        "steps:\n  - id: a\n    action: toy.device\n    args: {online: false}\n"
    )
    (found,) = _diagnostics(write_playbook(text))
    assert (found["line"], found["col"]) == (5, 3)
    assert found["path"] == "$.params.1bad"


def test_an_impossible_date_is_a_diagnostic(write_playbook: WritePlaybook) -> None:
    text = (
        "version: 1\nname: t\ndescription: 2020-13-45\nsteps:\n  - id: a\n"
        "    action: toy.device\n    args: {online: false}\n"
    )
    path = write_playbook(text)
    result = invoke("validate", path)
    assert_clean(result)
    assert result.exit_code == 1
    assert f"{path}:3:14: " in result.stdout


# -- hostile site paths ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("../../x", "leaves the site directory"),
        ("a/../../x", "leaves the site directory"),
        ("..", "leaves the site directory"),
        ("/etc/passwd", "is absolute"),
        ("//server/share", "is absolute"),
        ("C:\\\\Windows", "is absolute"),
        ("media/\\0evil", "NUL byte"),
        (".recover/journal.sqlite", "runner's state directory"),
        ("./.recover/lock", "runner's state directory"),
        (".", "names the site directory itself"),
        ("a/..", "names the site directory itself"),
    ],
)
def test_hostile_site_paths_are_refused_statically(
    write_playbook: WritePlaybook, value: str, message: str
) -> None:
    text = (
        f'version: 1\nname: t\nsite:\n  catalog: "{value}"\nsteps:\n  - id: a\n'
        f'    action: toy.copy\n    args: {{src: "{value}", dst: ok.bin}}\n'
    )
    found = _diagnostics(write_playbook(text))
    paths = {d["path"]: d for d in found}
    assert set(paths) == {"$.site.catalog", "$.steps[0].args.src"}, found
    for entry in found:
        assert message in entry["message"] and entry["fix"]
    assert (paths["$.site.catalog"]["line"], paths["$.site.catalog"]["col"]) == (4, 12)


def test_diagnostic_rendering() -> None:
    diagnostic = Diagnostic("f.yaml", 3, 7, "boom", ("steps", 2, "args", "x"), "do this")
    assert diagnostic.json_path == "$.steps[2].args.x"
    assert diagnostic.render() == "f.yaml:3:7: boom [$.steps[2].args.x]\n  fix: do this"
    assert Diagnostic("f.yaml", 1, 1, "m").render() == "f.yaml:1:1: m [$]"


def _billion_laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return (
        "version: 1\nname: t\nsteps:\n  - id: a\n    action: toy.device\n"
        "    args: {online: false}\nlaughs:\n" + "".join(f"  {line}\n" for line in lines)
    )


def test_an_alias_bomb_does_not_hang_validate(write_playbook: WritePlaybook) -> None:
    import signal

    path = write_playbook(_billion_laughs())

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        playbook, found = check_playbook(path, load_registry({}))
    except TimeoutError:
        pytest.fail("validate did not finish within 2 s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert playbook is None
    assert any(d.path == ("laughs",) for d in found), found


def test_a_plain_text_when_is_reported(write_playbook: WritePlaybook) -> None:
    text = (
        "version: 1\nname: t\nsteps:\n  - id: a\n    action: toy.device\n"
        "    when: steps.x.outputs.ok\n    args: {online: false}\n"
    )
    (found,) = _diagnostics(write_playbook(text))
    assert (found["line"], found["col"], found["path"]) == (6, 11, "$.steps[0].when")
    assert "always true" in found["message"]
    assert (
        found["fix"] == 'write an expression, e.g. when: "{{ steps.x.outputs.ok }}", or true/false'
    )


def test_a_path_with_a_lone_surrogate_is_refused_at_validate_with_its_own_fix(
    write_playbook: Callable[..., Path], toy_env: None
) -> None:
    """A YAML escape like "\\ud800" makes a string no file name can hold: validate
    says so (it used to pass it, and plan crashed encoding it)."""
    path = write_playbook(TOY_PLAYBOOK.replace("src: media/tape.bin", 'src: "media/\\ud800.bin"'))
    result = invoke("validate", path)
    assert_clean(result)
    assert result.exit_code == 1
    assert "has a character no file name can hold" in result.stdout
    assert "\\uD800-\\uDFFF escape alone is not a character" in fix_line(result.stdout)
