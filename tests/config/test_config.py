"""Configuration: TOML file, environment overrides, errors that name the bad key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dicomnode.config.dicom import DuplicatePolicy
from dicomnode.config.settings import ConfigError, load_settings
from tests.support.helpers import REPO_ROOT


def test_defaults_are_the_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(None)
    assert (s.dicom.ae_title, s.dicom.port) == ("DICOMNODE", 11112)
    assert s.catalog.url == "sqlite:///var/catalog.sqlite"
    assert s.storage.path == Path("var/storage")
    assert s.assembly.study_quiet_seconds == 10
    assert s.dicom.duplicate_policy is DuplicatePolicy.KEEP_FIRST


def test_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text('[dicom]\nport = 4242\nae_title = "FROMFILE"\n[[dicom.peers]]\nae_title = "CT1"\n')
    monkeypatch.setenv("DICOMNODE_DICOM__PORT", "5353")
    monkeypatch.setenv("DICOMNODE_ASSEMBLY__STUDY_QUIET_SECONDS", "2.5")
    s = load_settings(cfg)
    assert s.dicom.port == 5353 and s.dicom.ae_title == "FROMFILE"
    assert s.assembly.study_quiet_seconds == 2.5
    assert s.dicom.peers[0].ae_title == "CT1" and s.dicom.peers[0].hosts == ["0.0.0.0/0", "::/0"]


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[dicom]\nport = "eleven"\n', "dicom.port (DICOMNODE_DICOM__PORT)"),
        ("[dicom]\nport = 70000\n", "dicom.port"),
        ('[dicom]\nae_title = "WAY_TOO_LONG_AE_TITLE"\n', "dicom.ae_title"),
        ("[dicom]\nprot = 1\n", "dicom.prot"),
        ("[assembly]\nstudy_quiet_seconds = -1\n", "assembly.study_quiet_seconds"),
        ('[dicom]\nduplicate_policy = "newest"\n', "dicom.duplicate_policy"),
        ('[[dicom.peers]]\nae_title = "CT1"\nhosts = ["10.0.0.0/33"]\n', "dicom.peers.0.hosts"),
        ("[dicom.tls]\nenabled = true\n", "dicom.tls"),
        ('[log]\nlevel = "LOUD"\n', "log.level"),
        ('[log]\nformat = "xml"\n', "log.format"),
        ('[notify]\nwebhooks = ["not a url"]\n', "notify.webhooks.0"),
        ('[[http.tokens]]\nname = "a"\ntoken = "short"\n', "http.tokens.0.token"),
        (
            '[[http.tokens]]\nname = "a"\ntoken = "0123456789abcdef"\n[[http.tokens]]\nname = "a"\n'
            'token = "0123456789abcdeg"\n',
            "token names must be unique",
        ),
        ('[worklist]\ndefault_priority = "URGENT"\n', "worklist.default_priority"),
        ("[worklist.scoring]\nai_weight = -1\n", "worklist.scoring.ai_weight"),
        ("[retention]\ndisk_high_watermark_percent = 80\ndisk_low_watermark_percent = 90\n", "retention"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, named: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert named in str(err.value)


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICOMNODE_DICOM__MAX_ASSOCIATIONS", "many")
    with pytest.raises(ConfigError, match="DICOMNODE_DICOM__MAX_ASSOCIATIONS"):
        load_settings(None)


def test_serve_refuses_to_start_on_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[dicom]\nport = -5\n")
    r = subprocess.run(
        [sys.executable, "-m", "dicomnode", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    assert "dicom.port" in r.stderr
    nope = str(tmp_path / "nope.toml")
    missing = subprocess.run(
        [sys.executable, "-m", "dicomnode", "serve", "--config", nope],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2 and "config file not found" in missing.stderr


def test_malformed_toml_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[dicom\nport = 1\n")
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_settings(cfg)


def test_example_config_loads_once_edited_and_documents_every_key(tmp_path: Path) -> None:
    from dicomnode.config.http import EXAMPLE_TOKEN
    from dicomnode.config.routing import EXAMPLE_DESTINATION, RoutingRule, RuleMatch
    from dicomnode.config.settings import Settings

    example = REPO_ROOT / "deploy" / "dicomnode.example.toml"
    with pytest.raises(ConfigError) as refused:  # as shipped: its public token and example PACS are refused
        load_settings(example)
    assert "example's public secret" in str(refused.value) and "example configuration's PACS" in str(refused.value)
    edited = tmp_path / "edited.toml"
    edited.write_text(
        example.read_text()
        .replace(EXAMPLE_TOKEN, "a-secret-of-our-own-0123456789")
        .replace(EXAMPLE_DESTINATION, "PACS@10.20.30.40:104")
    )
    s = load_settings(edited)
    assert [p.ae_title for p in s.dicom.peers] == ["CT_SCANNER1", "PACS"]
    assert [r.name for r in s.routing.rules] == ["ct-head", "chest-radiograph"]
    text = example.read_text()
    documented = [(section, model.annotation) for section, model in Settings.model_fields.items()]
    documented += [("routing.rules", RoutingRule), ("routing.rules.match", RuleMatch)]
    for section, model in documented:
        for key in model.model_fields:  # type: ignore[union-attr]
            assert (
                f"{key} =" in text
                or f"# {key} =" in text
                or f"[{section}.{key}]" in text
                or f"[[{section}.{key}]]" in text
            ), f"{section}.{key} missing from the example config"


def test_catalog_of_an_older_version_is_refused_clearly(tmp_path: Path) -> None:
    import sqlite3

    from dicomnode.catalog.db import CatalogSchemaError, open_catalog

    db = tmp_path / "old.sqlite"
    open_catalog(f"sqlite:///{db}").dispose()
    with sqlite3.connect(db) as conn:  # what issue 2's catalog looked like: no analysis column
        conn.execute("ALTER TABLE studies DROP COLUMN analysis")
    with pytest.raises(CatalogSchemaError, match=r"lacks studies\.analysis"):
        open_catalog(f"sqlite:///{db}")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[catalog]\nurl = "sqlite:///{db}"\n[storage]\npath = "{tmp_path / "s"}"\nmin_free_bytes = 0\n'
        "[dicom]\nport = 0\n[routing]\nrules = []\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "dicomnode", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1 and "lacks studies.analysis" in r.stderr
