"""Hostile files and parameters: each is refused with a clear message that echoes no value, the raw copy is
kept (when the file got that far), and nothing is published."""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_land import minimal_frame

from treatment_marts.core.config import ConfigError, load_areas, load_rules
from treatment_marts.core.ids import InvalidIdentifier
from treatment_marts.core.safety import ENV_ALLOWED_ROOTS, InputLimits, UnsafePath, XlsxLimits, load_input_limits
from treatment_marts.core.settings import REPO_DIR, Settings
from treatment_marts.ingest.land import ExtractError, land_extract, read_extract
from treatment_marts.marts import load_marts
from treatment_marts.pipeline.land import land
from treatment_marts.pipeline.record import run_dir

PERIOD = "2024-03"
CONFIG = REPO_DIR / "include" / "config"
SECRET = "ZQXJ9SECRET"  # stands for an identifying value: it must never appear in a message


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(data_root=tmp_path / "data")


def valid_xlsx(path: Path) -> Path:
    minimal_frame(3).to_excel(path, index=False)
    return path


def rewrite_member(
    source: Path, target: Path, member: str, data: bytes | None = None, extra: dict[str, bytes] | None = None
) -> Path:
    """A copy of an XLSX with one part replaced and/or parts added."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(
                info.filename, data if (data is not None and info.filename == member) else src.read(info.filename)
            )
        for name, payload in (extra or {}).items():
            dst.writestr(name, payload)
    return target


def assert_refused_and_kept(settings: Settings, path: Path, match: str) -> ExtractError:
    """Landing refuses the file with ``match``; the raw copy exists, read-only; nothing landed or published."""
    with pytest.raises(ExtractError, match=match) as caught:
        land_extract(settings, PERIOD, path, "hostile")
    raw = list((settings.raw_dir / f"period={PERIOD}").glob("*.*[!6]"))  # not the .sha256 files
    assert len(raw) == 1 and raw[0].read_bytes() == path.read_bytes()
    assert not os.access(raw[0], os.W_OK) or os.geteuid() == 0
    assert (raw[0].stat().st_mode & 0o777) == 0o400
    assert not (settings.restricted_dir / "landed").exists() and not settings.public_dir.exists()
    assert SECRET not in str(caught.value)
    return caught.value


# --- XLSX: zip bomb and XML bomb ---------------------------------------------------------------------


def test_an_xlsx_zip_bomb_is_refused_before_openpyxl_parses_it(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 64 MB of sheet XML that deflates to ~64 KB (ratio ~1000:1): a real sheet compresses 5-20:1.
    bomb = rewrite_member(
        valid_xlsx(tmp_path / "ok.xlsx"),
        tmp_path / "bomb.xlsx",
        "xl/worksheets/sheet1.xml",
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        + b" " * (64 << 20)
        + b"</worksheet>",
    )
    assert bomb.stat().st_size < 200_000

    def parsed(*_: object, **__: object) -> None:  # openpyxl must never be reached
        raise AssertionError("openpyxl was asked to parse a zip bomb")

    monkeypatch.setattr(pd, "ExcelFile", parsed)
    started = time.perf_counter()
    error = assert_refused_and_kept(
        settings, bomb, r"bomb\.xlsx: part xl/worksheets/sheet1\.xml compresses [\d,]+:1, above the 100:1 limit"
    )
    assert "possible zip bomb" in str(error) and time.perf_counter() - started < 5


def test_the_total_uncompressed_size_is_bounded(tmp_path: Path) -> None:
    path = valid_xlsx(tmp_path / "ok.xlsx")
    small = InputLimits(xlsx=XlsxLimits(max_uncompressed_mb=1))
    padded = rewrite_member(path, tmp_path / "padded.xlsx", "", extra={"docProps/custom.bin": os.urandom(2 << 20)})
    with pytest.raises(ExtractError, match=r"would inflate to 2 MB, above the 1 MB limit .*zip bomb"):
        read_extract(padded, limits=small)
    assert len(read_extract(path, limits=small)) == 3  # the real workbook is far below


def test_a_central_directory_that_lies_about_sizes_fails_its_crc(tmp_path: Path) -> None:
    """The ratio check trusts declared sizes; streaming stops at the declared size and the CRC catches the lie."""
    path = rewrite_member(
        valid_xlsx(tmp_path / "ok.xlsx"),
        tmp_path / "liar.xlsx",
        "xl/worksheets/sheet1.xml",
        b"<worksheet>" + b" " * (8 << 20) + b"</worksheet>",
    )
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    # Patch the declared uncompressed size (central directory and local header) down to 1 KB.
    real = info.file_size.to_bytes(4, "little")
    assert data.count(real) >= 2
    data = data.replace(real, (1024).to_bytes(4, "little"))
    path.write_bytes(bytes(data))
    with pytest.raises(ExtractError, match=r"liar\.xlsx: not a readable XLSX workbook \(BadZipFile in a part\)"):
        read_extract(path)


def billion_laughs(levels: int = 9) -> bytes:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels + 1)
    )
    return f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]>'.encode()


@pytest.mark.parametrize("member", ["xl/worksheets/sheet1.xml", "xl/workbook.xml", "[Content_Types].xml"])
def test_an_xml_bomb_is_refused_in_any_part(settings: Settings, tmp_path: Path, member: str) -> None:
    path = valid_xlsx(tmp_path / "ok.xlsx")
    with zipfile.ZipFile(path) as archive:
        body = archive.read(member)
    body = body.split(b"?>", 1)[1] if body.startswith(b"<?xml") else body
    bomb = rewrite_member(
        path, tmp_path / "laughs.xlsx", member, billion_laughs() + body.replace(b"<t>", b"<t>&lol9;", 1)
    )
    started = time.perf_counter()
    assert_refused_and_kept(
        settings,
        bomb,
        rf"laughs\.xlsx: XML part {member.replace('[', '.').replace(']', '.')} declares a DTD or entities",
    )
    assert time.perf_counter() - started < 5


def test_an_external_entity_is_refused(tmp_path: Path) -> None:
    path = valid_xlsx(tmp_path / "ok.xlsx")
    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><sst><si><t>&e;</t></si></sst>'
    with pytest.raises(ExtractError, match="declares a DTD or entities"):
        read_extract(rewrite_member(path, tmp_path / "xxe.xlsx", "", extra={"xl/sharedStrings.xml": xxe}))


def test_utf16_xml_parts_are_refused(tmp_path: Path) -> None:
    """A UTF-16 part could hide a DOCTYPE from a byte scan; XLSX parts are UTF-8, so refuse the rest."""
    path = valid_xlsx(tmp_path / "ok.xlsx")
    doctype = billion_laughs(2).decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
    with pytest.raises(ExtractError, match="is not UTF-8"):
        read_extract(rewrite_member(path, tmp_path / "u16.xlsx", "xl/workbook.xml", doctype.encode("utf-16")))


def test_the_parser_itself_is_also_immune(tmp_path: Path) -> None:
    """Second layer, behind our scan: the XML parser openpyxl uses refuses entity expansion on its own
    (defusedxml when installed, else expat >= 2.4's amplification limit). Bypass the scan and check."""
    from openpyxl import load_workbook

    path = valid_xlsx(tmp_path / "ok.xlsx")
    with zipfile.ZipFile(path) as archive:
        body = archive.read("xl/worksheets/sheet1.xml")
    bomb = rewrite_member(
        path,
        tmp_path / "laughs.xlsx",
        "xl/worksheets/sheet1.xml",
        billion_laughs() + body.replace(b"<t>", b"<t>&lol9;", 1),
    )
    started = time.perf_counter()
    with pytest.raises(Exception) as caught:
        workbook = load_workbook(bomb, read_only=True)
        list(workbook.active.iter_rows(values_only=True))
    assert time.perf_counter() - started < 5
    chain, error = [], caught.value
    while error is not None:
        chain.append(type(error).__name__)
        error = error.__cause__ or error.__context__
    assert {"ParseError", "DTDForbidden", "EntitiesForbidden"} & set(chain), chain
    from openpyxl.xml import DEFUSEDXML

    assert DEFUSEDXML, "defusedxml (requirements.txt) is not installed: openpyxl parses with plain ElementTree"


def test_a_corrupt_sheet_inside_a_valid_zip_is_an_extract_error(tmp_path: Path) -> None:
    path = rewrite_member(
        valid_xlsx(tmp_path / "ok.xlsx"),
        tmp_path / "broken.xlsx",
        "xl/worksheets/sheet1.xml",
        b"<worksheet><sheetData><row>",
    )
    with pytest.raises(ExtractError, match=r"broken\.xlsx: not a readable XLSX workbook \(ParseError\)"):
        read_extract(path)


def test_a_corrupt_deflate_stream_is_an_extract_error(tmp_path: Path) -> None:
    """zlib raises its own error type (not BadZipFile) for a broken deflate block; found by the fuzz test."""
    source = valid_xlsx(tmp_path / "ok.xlsx")
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        member = archive.getinfo("xl/worksheets/sheet1.xml")
    # the member's compressed bytes start after its local header (30 bytes + name + extra field)
    name_len, extra_len = (
        int.from_bytes(data[member.header_offset + 26 : member.header_offset + 28], "little"),
        int.from_bytes(data[member.header_offset + 28 : member.header_offset + 30], "little"),
    )
    start = member.header_offset + 30 + name_len + extra_len
    data[start] = 0xFF  # BTYPE 11: a reserved (invalid) deflate block type
    broken = tmp_path / "inflate.xlsx"
    broken.write_bytes(bytes(data))
    with zipfile.ZipFile(broken) as archive, pytest.raises(__import__("zlib").error):
        archive.read("xl/worksheets/sheet1.xml")  # the corruption is the one this test is about
    with pytest.raises(ExtractError, match=r"inflate\.xlsx: not a readable XLSX workbook"):
        read_extract(broken)


def test_real_workbooks_pass_the_bomb_checks(tmp_path: Path) -> None:
    from treatment_marts.ops.synth import generate_extract, write_extract

    path = write_extract(generate_extract(PERIOD, clients=2000, areas=["Northton"], seed=4), tmp_path / "real.xlsx")
    with zipfile.ZipFile(path) as archive:
        sheet = archive.getinfo("xl/worksheets/sheet1.xml")
    assert sheet.file_size > 1 << 20 and sheet.file_size / sheet.compress_size < 30  # far below the 100:1 limit
    assert len(read_extract(path)) > 1000


# --- long fields and lines, NUL bytes, bad encodings -------------------------------------------------


def test_an_overlong_field_names_column_and_row_not_the_value(settings: Settings, tmp_path: Path) -> None:
    frame = minimal_frame(4)
    frame.loc[2, "client_ref"] = SECRET * 100
    frame.loc[3, "agency_code"] = "N" * 300
    path = tmp_path / "long.csv"
    frame.to_csv(path, index=False)
    error = str(assert_refused_and_kept(settings, path, r"long\.csv: 2 field problem\(s\)"))
    assert "column client_ref: 1 value(s) longer than 256 characters (rows 4) [values not shown]" in error
    assert "column agency_code: 1 value(s) longer than 256 characters (rows 5)" in error
    assert "NNNN" not in error


def test_an_overlong_header_name_is_not_echoed(tmp_path: Path) -> None:
    frame = minimal_frame(2).rename(columns={"agency_code": SECRET * 40})
    path = tmp_path / "header.parquet"
    frame.to_parquet(path, index=False)
    with pytest.raises(ExtractError, match=r"header name in column position 2 is 440 characters") as caught:
        read_extract(path)
    assert SECRET not in str(caught.value)


def test_an_overlong_line_is_refused_before_parsing(settings: Settings, tmp_path: Path) -> None:
    frame = minimal_frame(3)
    text = frame.to_csv(index=False)
    lines = text.splitlines()
    lines[2] = lines[2] + "," + SECRET * 10_000  # a runaway row, ~110 KB
    path = tmp_path / "runaway.csv"
    path.write_text("\n".join(lines) + "\n")
    assert_refused_and_kept(settings, path, r"runaway\.csv: line 3 is [\d,]+ bytes long, above the 65,536-byte limit")


def test_a_file_without_line_breaks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "oneline.csv"
    path.write_bytes(b"a," * 100_000)
    with pytest.raises(ExtractError, match=r"line 1 is 200,000 bytes long"):
        read_extract(path)


def test_the_limits_come_from_operations_yaml(tmp_path: Path) -> None:
    limits = load_input_limits(CONFIG)
    assert limits.max_field_chars == 256 and limits.xlsx.max_compression_ratio == 100
    config = _config_copy(tmp_path)
    _edit_yaml(config / "operations.yaml", lambda operations: operations["input_limits"].update(max_field_chars=8))
    with pytest.raises(ConfigError, match="max_field_chars"):
        load_input_limits(config)
    _edit_yaml(config / "operations.yaml", lambda operations: operations["input_limits"].update(max_field_chars=20))
    settings = replace(Settings.from_env(data_root=tmp_path / "data"), config_dir=config)
    frame = minimal_frame(2)
    frame.loc[1, "episode_id"] = "E" * 21
    frame.to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(ExtractError, match=r"column episode_id: 1 value\(s\) longer than 20 characters \(rows 3\)"):
        land_extract(settings, PERIOD, tmp_path / "x.csv", "r")


def test_nul_bytes_are_refused_with_their_position(settings: Settings, tmp_path: Path) -> None:
    text = minimal_frame(3).to_csv(index=False).encode()
    at = text.index(b"CLIENTREF1", text.index(b"\n"))
    path = tmp_path / "nul.csv"
    path.write_bytes(text[:at] + b"\x00" + text[at:])
    error = assert_refused_and_kept(
        settings, path, rf"nul\.csv: NUL byte at byte {at} \(line 2\); .*binary or corrupted"
    )
    assert "CLIENTREF" not in str(error)


def test_utf16_csv_gets_a_re_export_hint(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes(minimal_frame(2).to_csv(index=False).encode("utf-16"))
    with pytest.raises(ExtractError, match="looks UTF-16 encoded; re-export it as UTF-8 CSV"):
        read_extract(path)


def test_nul_in_a_parquet_string_is_refused(tmp_path: Path) -> None:
    frame = minimal_frame(3)
    frame.loc[1, "dat_code"] = "A1\x00B"
    frame.to_parquet(tmp_path / "nul.parquet", index=False)
    with pytest.raises(ExtractError, match=r"column dat_code: 1 value\(s\) hold a NUL byte \(rows 3\)"):
        read_extract(tmp_path / "nul.parquet")


def test_invalid_utf8_names_byte_and_line(settings: Settings, tmp_path: Path) -> None:
    text = minimal_frame(5).to_csv(index=False).encode()
    at = text.index(b"CLIENTREF1", text.index(b"EP-3"))
    path = tmp_path / "latin.csv"
    path.write_bytes(text[:at] + b"\xe9\xff" + text[at:])
    error = assert_refused_and_kept(
        settings, path, rf"not UTF-8 \(invalid byte 0xe9 at byte {at}, line 6\)"
    )  # the EP-4 row
    assert "CLIENTREF" not in str(error)


# --- hostile file names and paths ----------------------------------------------------------------------


def test_a_hostile_file_name_is_made_safe_for_the_raw_zone_and_messages(settings: Settings, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    name = "x\x1b[31m;rm -rf ~\n.csv"
    (inbox / name).write_text("not,an,extract\n1,2,3\n")
    with pytest.raises(ExtractError) as caught:
        land(settings, PERIOD, inbox, "r")
    message = str(caught.value)
    assert "\x1b" not in message and "\n" not in message.split(":")[0] and "\\x1b" in message
    raw = [p.name for p in (settings.raw_dir / f"period={PERIOD}").iterdir()]
    assert raw and all(
        n.startswith("x__31m_rm_-rf___.") and "/" not in n and "\n" not in n and " " not in n for n in raw
    )


@pytest.mark.parametrize(
    "extract", ["{root}/inbox/../../../etc", "{root}/inbox/period=2024-03/../../x.csv", "inbox\x00.csv", "inbox/\n"]
)
def test_traversal_in_the_extract_parameter_is_refused(settings: Settings, tmp_path: Path, extract: str) -> None:
    with pytest.raises(UnsafePath, match=r"extract location: .*(\.\.|control characters)"):
        land(settings, PERIOD, extract.format(root=tmp_path), "r")
    assert not settings.raw_dir.exists()


def test_a_symlink_leaving_the_inbox_is_refused(settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    minimal_frame(2).to_csv(outside / "secret.csv", index=False)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    minimal_frame(2).to_csv(inbox / "a.csv", index=False)
    (inbox / "b.csv").symlink_to(outside / "secret.csv")
    with pytest.raises(UnsafePath, match=r"b\.csv is a symlink leaving the inbox folder"):
        land(settings, PERIOD, inbox, "r")
    with pytest.raises(UnsafePath, match="symlink leaving its folder"):
        land(settings, PERIOD, inbox / "b.csv", "r")
    assert not settings.raw_dir.exists()  # refused before anything is copied
    (inbox / "b.csv").unlink()
    (inbox / "c.csv").symlink_to(inbox / "a.csv")  # a link inside the folder is fine
    assert len(land(settings, PERIOD, inbox, "r").landed) == 2


def test_allowed_roots_confine_data_root_and_extract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = tmp_path / "allowed"
    (allowed / "inbox").mkdir(parents=True)
    minimal_frame(2).to_csv(allowed / "inbox" / "a.csv", index=False)
    minimal_frame(2).to_csv(tmp_path / "outside.csv", index=False)
    monkeypatch.setenv(ENV_ALLOWED_ROOTS, str(allowed))
    with pytest.raises(UnsafePath, match=r"data root: .* is outside the allowed roots .*TREATMENT_MARTS_ALLOWED_ROOTS"):
        Settings.from_env(data_root="/")
    with pytest.raises(UnsafePath, match="data root: .*'..' component"):
        Settings.from_env(data_root=str(allowed / ".." / "x"))
    (allowed / "escape").symlink_to(tmp_path)
    with pytest.raises(UnsafePath, match="outside the allowed roots"):
        Settings.from_env(data_root=allowed / "escape" / "data")
    settings = Settings.from_env(data_root=allowed / "data")
    with pytest.raises(UnsafePath, match="extract location: .* is outside the allowed roots"):
        land(settings, PERIOD, tmp_path / "outside.csv", "r")
    with pytest.raises(UnsafePath, match="outside the allowed roots"):
        land(settings, PERIOD, "/etc/passwd", "r")
    assert len(land(settings, PERIOD, allowed / "inbox", "r").landed) == 1


@pytest.mark.parametrize("period", ["../2024-03", "2024-03/..", "2024-03\n", "2024-3", "2024-03 ", "/etc"])
def test_a_hostile_period_is_refused(settings: Settings, tmp_path: Path, period: str) -> None:
    minimal_frame(2).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(InvalidIdentifier, match="period must be YYYY-MM"):
        land(settings, period, tmp_path / "a.csv", "r")
    assert not settings.raw_dir.exists()


def test_a_hostile_run_id_cannot_leave_the_runs_folder(settings: Settings) -> None:
    assert run_dir(settings, "../../../../etc/cron.d/x").parent == settings.restricted_dir / "runs"


# --- SQL identifiers and labels from configuration -------------------------------------------------------


def _config_copy(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    return config


def _edit_yaml(path: Path, change) -> None:
    """Load a configuration file, let ``change`` mutate it in place, write it back."""
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize("name", ['m"; drop table releases; --', "Mart", "m-1", "1m", "x" * 64, "märt", "m\n"])
def test_a_hostile_mart_name_is_refused_on_config_load(tmp_path: Path, name: str) -> None:
    config = _config_copy(tmp_path)
    _edit_yaml(config / "marts.yaml", lambda marts: marts["marts"][0].update(name=name))
    with pytest.raises(ConfigError, match=r"(?s)marts\.yaml.*name.*String should match pattern"):
        load_marts(config)


def test_a_hostile_dimension_or_collapse_name_is_refused_on_config_load(tmp_path: Path) -> None:
    config = _config_copy(tmp_path)

    def hostile_dimension(marts: dict) -> None:
        marts["marts"][0]["dimensions"][0] = "sex); DELETE FROM releases; --"

    def hostile_collapse(rules: dict) -> None:
        rules["collapses"]['sex"--'] = rules["collapses"].pop("sex")

    _edit_yaml(config / "marts.yaml", hostile_dimension)
    with pytest.raises(ConfigError, match=r"(?s)dimensions\.0.*String should match pattern"):
        load_marts(config)
    _edit_yaml(config / "rules.yaml", hostile_collapse)
    with pytest.raises(ConfigError, match="cannot be column names"):
        load_rules(config)


@pytest.mark.parametrize("name", ["../../etc", '=HYPERLINK("http://x")', "-Northton", "a/b", "Northton\r\n", ""])
def test_a_hostile_area_name_is_refused_on_config_load(tmp_path: Path, name: str) -> None:
    config = _config_copy(tmp_path)
    _edit_yaml(config / "areas.yaml", lambda areas: areas["areas"][0].update(name=name))
    with pytest.raises(ConfigError, match=r"(?s)areas\.yaml.*areas\.0\.name"):
        load_areas(config)


def test_real_area_names_pass() -> None:
    names = [a.name for a in load_areas(CONFIG).areas]
    assert "Little Haven" in names
    from treatment_marts.core.config import Area

    for plain in (
        "Bournemouth, Christchurch and Poole",
        "St. Helens",
        "Kingston upon Hull",
        "Stockton-on-Tees",
        "Brighton & Hove",
    ):
        Area(
            code="E06000001",
            name=plain,
            location="Other",
            region="North East",
            clients=1,
            substance_mix={"alcohol_only": 1.0},
        )


def test_nested_parquet_values_are_an_extract_error(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(minimal_frame(2), preserve_index=False)
    index = table.column_names.index("dat_code")
    table = table.set_column(index, "dat_code", pa.array([{"a": [1, 2]}, {"a": None}]))
    pq.write_table(table, tmp_path / "nested.parquet")
    with pytest.raises(ExtractError, match="nested.parquet"):
        read_extract(tmp_path / "nested.parquet")
