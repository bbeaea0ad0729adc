"""C2SP signed-note / tlog-checkpoint: known vectors, exact format, tampering, key files."""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vault.ledger.checkpoint import (
    Checkpoint,
    LedgerSigner,
    VerifierKey,
    key_id,
    load_or_create_signing_key,
    open_checkpoint,
    open_note,
)
from vault.errors import ConfigError, KeyUnavailable, LedgerError

# golang.org/x/mod/sumdb/note's documented example: Ed25519 is deterministic, so signing the
# same text with the same key must give Go's signature byte for byte.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngo"
    + "tpRZb6KE6RyyBwJnAM=\n"
)

ORIGIN = "vault.example/custody"
ROOT = hashlib.sha256(b"root").digest()


def go_signer() -> LedgerSigner:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]
    return LedgerSigner(Ed25519PrivateKey.from_private_bytes(seed), "PeterNeumann")


@pytest.fixture
def signer() -> LedgerSigner:
    return LedgerSigner.generate(ORIGIN)


# --- known vectors ---------------------------------------------------------------------------


def test_go_note_vector_signs_identically() -> None:
    signer = go_signer()
    assert signer.verifier_key() == GO_VKEY
    assert signer.sign_note(GO_TEXT) == GO_NOTE


def test_go_note_vector_opens() -> None:
    assert open_note(GO_NOTE, GO_VKEY) == GO_TEXT


def test_key_id_formula() -> None:
    signer = LedgerSigner.generate("example.org/log")
    expected = hashlib.sha256(b"example.org/log\n\x01" + signer.public_key).digest()[:4]
    assert signer.key_id == expected == key_id("example.org/log", signer.public_key)
    name, hex_id, encoded = signer.verifier_key().split("+", 2)
    assert (name, hex_id) == ("example.org/log", expected.hex())
    assert base64.b64decode(encoded) == b"\x01" + signer.public_key


# --- format ----------------------------------------------------------------------------------


def test_checkpoint_body_format_exact() -> None:
    cp = Checkpoint(ORIGIN, 12345, ROOT)
    assert cp.body() == f"{ORIGIN}\n12345\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint(ORIGIN, 0, ROOT, ("ext one",)).body().endswith("\next one\n")


def test_signed_note_format_exact(signer: LedgerSigner) -> None:
    cp = Checkpoint(ORIGIN, 7, ROOT)
    note = signer.sign(cp)
    body, sigs = note.split("\n\n")
    assert body + "\n" == cp.body()
    assert sigs.endswith("\n") and sigs.count("\n") == 1
    dash, name, blob = sigs[:-1].split(" ")
    assert (dash, name) == ("\u2014", ORIGIN)
    raw = base64.b64decode(blob)
    assert raw[:4] == signer.key_id and len(raw) == 4 + 64


def test_sign_open_round_trip(signer: LedgerSigner) -> None:
    cp = Checkpoint(ORIGIN, 99, ROOT, ("timestamp 1700000000",))
    assert open_checkpoint(signer.sign(cp), signer.verifier_key(), origin=ORIGIN) == cp


@pytest.mark.parametrize(
    "body",
    [
        "origin\n01\n" + base64.b64encode(ROOT).decode() + "\n",  # leading zero
        "origin\n-1\n" + base64.b64encode(ROOT).decode() + "\n",
        "origin\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n",  # short hash
        "origin\n1\n" + base64.b64encode(ROOT).decode(),  # no final newline
        "origin\n1\n" + base64.b64encode(ROOT).decode().rstrip("=") + "\n",  # no padding
        "origin\n1\n",
        "\n1\n" + base64.b64encode(ROOT).decode() + "\n",  # empty origin
        "origin\n1\n" + base64.b64encode(ROOT).decode() + "\n\n",  # empty extension line
        "origin\n1\n" + base64.b64encode(ROOT).decode()[:-2] + "9=\n",  # non-canonical base64
    ],
)
def test_malformed_checkpoint_bodies_fail(body: str) -> None:
    with pytest.raises(LedgerError):
        Checkpoint.from_body(body)


def test_bad_fields_refused() -> None:
    for args in (("", 1, ROOT), ("a\nb", 1, ROOT), (ORIGIN, -1, ROOT), (ORIGIN, 1, ROOT[:16])):
        with pytest.raises(LedgerError):
            Checkpoint(*args)
    for name in ("", "has space", "has+plus", "tab\t"):
        with pytest.raises(LedgerError):
            LedgerSigner.generate(name)


# --- tampering -------------------------------------------------------------------------------


def test_tampered_body_fails(signer: LedgerSigner) -> None:
    note = signer.sign(Checkpoint(ORIGIN, 10, ROOT))
    for bad in (note.replace("\n10\n", "\n11\n"), note.replace(ORIGIN + "\n", ORIGIN + "x\n", 1)):
        with pytest.raises(LedgerError):
            open_checkpoint(bad, signer.verifier_key())


def test_every_flipped_signature_byte_fails(signer: LedgerSigner) -> None:
    note = signer.sign(Checkpoint(ORIGIN, 10, ROOT))
    text, line = note.split("\n\n")
    prefix, blob = line[:-1].rsplit(" ", 1)
    raw = base64.b64decode(blob)
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        forged = f"{text}\n\n{prefix} {base64.b64encode(bytes(bad)).decode()}\n"
        with pytest.raises(LedgerError):
            open_checkpoint(forged, signer.verifier_key())


def test_wrong_key_fails(signer: LedgerSigner) -> None:
    note = signer.sign(Checkpoint(ORIGIN, 10, ROOT))
    other = LedgerSigner.generate(ORIGIN)  # same name, different key: different key id
    with pytest.raises(LedgerError, match="not signed by"):
        open_checkpoint(note, other.verifier_key())


def test_signature_by_impostor_under_our_key_id_fails(signer: LedgerSigner) -> None:
    # A line claiming our name and key id, with another key's signature, must fail rather than
    # be skipped as "unknown".
    cp = Checkpoint(ORIGIN, 10, ROOT)
    impostor = Ed25519PrivateKey.generate().sign(cp.body().encode())
    line = f"— {ORIGIN} {base64.b64encode(signer.key_id + impostor).decode()}\n"
    with pytest.raises(LedgerError, match="does not verify"):
        open_checkpoint(cp.body() + "\n" + line, signer.verifier_key())


def test_other_signatures_are_tolerated(signer: LedgerSigner) -> None:
    cp = Checkpoint(ORIGIN, 10, ROOT)
    witness = LedgerSigner.generate("witness.example")
    cosigned = witness.sign(cp) + signer.sign(cp).split("\n\n")[1]
    assert cosigned.count("\u2014") == 2
    assert open_checkpoint(cosigned, signer.verifier_key()) == cp
    assert open_checkpoint(cosigned, witness.verifier_key()) == cp


def test_unsigned_and_malformed_notes_fail(signer: LedgerSigner) -> None:
    body = Checkpoint(ORIGIN, 10, ROOT).body()
    note = signer.sign(Checkpoint(ORIGIN, 10, ROOT))
    sig_line = note.split("\n\n")[1]
    for bad in (
        body,  # no signature block
        body + "\n",  # empty signature block
        body + "\n" + sig_line.replace("\u2014", "-"),  # not an em dash
        body + "\n" + sig_line + "garbage\n",
        body + "\n" + sig_line[:-1],  # no final newline
        body + "\n" + sig_line.replace(" ", "  ", 1),
        body.replace("\n10\n", "\n10\x07\n") + "\n" + sig_line,  # control character
    ):
        with pytest.raises(LedgerError):
            open_checkpoint(bad, signer.verifier_key())


def test_too_many_signatures_fail(signer: LedgerSigner) -> None:
    cp = Checkpoint(ORIGIN, 10, ROOT)
    others = "".join(f"— w{i} {base64.b64encode(bytes(68)).decode()}\n" for i in range(100))
    with pytest.raises(LedgerError, match="more than"):
        open_checkpoint(signer.sign(cp) + others, signer.verifier_key())


def test_origin_mismatch_fails(signer: LedgerSigner) -> None:
    note = signer.sign(Checkpoint("other.example/log", 1, ROOT))
    with pytest.raises(LedgerError, match="not"):
        open_checkpoint(note, signer.verifier_key(), origin=ORIGIN)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k.replace("+", "-", 1),
        lambda k: k[: k.index("+") + 1] + "00000000" + k[k.index("+") + 9 :],
        lambda k: k[:-4],
        lambda k: k.replace("+A", "+B", 1),  # algorithm byte 0x05
        lambda k: "other" + k,  # name no longer matches the key id
    ],
)
def test_mangled_verifier_keys_fail(signer: LedgerSigner, mangle: object) -> None:
    bad = mangle(signer.verifier_key())  # type: ignore[operator]
    with pytest.raises(LedgerError):
        VerifierKey.parse(bad)


# --- key files -------------------------------------------------------------------------------


def test_key_file_created_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger.key"
    first = load_or_create_signing_key(path, ORIGIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = load_or_create_signing_key(path, ORIGIN)
    assert again.verifier_key() == first.verifier_key()
    assert [p.name for p in path.parent.iterdir()] == ["ledger.key"]  # no temp files left


def test_key_file_readable_by_others_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    load_or_create_signing_key(path, ORIGIN)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError):
        load_or_create_signing_key(path, ORIGIN)


def test_raw_seed_key_file_read(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "seed.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    )
    os.chmod(path, 0o600)
    signer = load_or_create_signing_key(path, ORIGIN)
    assert signer.verifier_key() == LedgerSigner(key, ORIGIN).verifier_key()


def test_garbage_key_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(b"not a key")
    os.chmod(path, 0o600)
    with pytest.raises(KeyUnavailable):
        load_or_create_signing_key(path, ORIGIN)


def _create_key(path: str, queue: multiprocessing.Queue[str]) -> None:
    queue.put(load_or_create_signing_key(Path(path), ORIGIN).verifier_key())


def test_concurrent_key_creation_agrees(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    path = tmp_path / "ledger.key"
    procs = [ctx.Process(target=_create_key, args=(str(path), queue)) for _ in range(4)]
    for p in procs:
        p.start()
    keys = {queue.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
    assert len(keys) == 1
    assert load_or_create_signing_key(path, ORIGIN).verifier_key() in keys


def test_derived_keys_are_bound_to_key_and_context() -> None:
    a, b = LedgerSigner.generate(ORIGIN), LedgerSigner.generate(ORIGIN)
    assert a.derive_key("x") == a.derive_key("x")
    assert a.derive_key("x") != a.derive_key("y")
    assert a.derive_key("x") != b.derive_key("x")
    assert len(a.derive_key("x")) == 32


# --- Issue #11 finding 18: parse as strictly as C2SP signed-note and sumdb/note ---------------

GO_ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WW"
    "d1RvMc+QQ=\n"
)
GO_PETER_SIG = GO_NOTE[len(GO_TEXT) + 1 :]


def test_go_cosigned_example_opens_with_either_key() -> None:
    """Issue #11 finding 18: sumdb/note's doubly signed example opens with each key, and a key
    nobody used is 'not signed' (note_test.go TestOpen)."""
    note = GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG
    assert open_note(note, GO_VKEY) == GO_TEXT
    assert open_note(note, GO_ENOCH_VKEY) == GO_TEXT
    with pytest.raises(LedgerError, match="not signed"):
        open_note(GO_TEXT + "\n" + GO_ENOCH_SIG, GO_VKEY)


@pytest.mark.parametrize(
    "note",
    [
        # note_test.go's badMsgs, each 'malformed note' in Go.
        pytest.param(GO_TEXT, id="no-signature-block"),
        pytest.param(GO_TEXT + "\n", id="empty-signature-block"),
        pytest.param(GO_TEXT + "\n" + GO_PETER_SIG[:-1], id="no-final-newline"),
        pytest.param("\x01" + GO_TEXT + "\n" + GO_PETER_SIG, id="control-in-text"),
        pytest.param(GO_TEXT + "\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1"
                     "FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n", id="space-in-key-name"),
        pytest.param(GO_TEXT + "\n" + GO_PETER_SIG + "Unexpected line.\n", id="stray-line"),
        # The review's cases: an unknown signer's line must be well formed too.
        pytest.param(GO_TEXT + "\n" + GO_PETER_SIG + "— a+b AAAAAAA=\n", id="plus-in-other-key-name"),
        pytest.param(GO_TEXT + "\n" + GO_PETER_SIG + "— wit\x7fness AAAAAAA=\n", id="del-in-key-name"),
        pytest.param(GO_TEXT + "\n" + GO_PETER_SIG + "— witness\u200b AAAAAAA=\n", id="format-char-name"),
        pytest.param(GO_TEXT + "\n" + GO_PETER_SIG + "— witness AAAAAA==\n", id="4-byte-signature"),
        pytest.param(GO_TEXT + "\n" + GO_PETER_SIG + "— witness \n", id="empty-signature"),
        pytest.param(GO_TEXT + "\n" + GO_PETER_SIG + "— witness AAAA\tAAA=\n", id="tab-in-signature"),
        pytest.param(GO_TEXT + "\n" + GO_PETER_SIG.replace("\n", "\r\n"), id="crlf"),
        pytest.param(GO_TEXT + "\n" + GO_PETER_SIG * 101, id="101-signatures"),
    ],
)
def test_malformed_notes_are_refused_as_go_refuses_them(note: str) -> None:
    """Issue #11 finding 18: every note golang.org/x/mod/sumdb/note calls malformed is refused,
    including lines by keys we do not know (control characters, '+' in a name, <5-byte sigs)."""
    with pytest.raises(LedgerError):
        open_note(note, GO_VKEY)


@pytest.mark.parametrize(
    "vkey",
    ["Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
     "Peter\x01+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
     "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"],
)
def test_verifier_keys_with_bad_names_are_refused(vkey: str) -> None:
    """Issue #11 finding 18: a verifier key's name follows the same rules as a signer's."""
    with pytest.raises(LedgerError):
        VerifierKey.parse(vkey)


def test_checkpoint_for_another_origin_is_refused() -> None:
    """Issue #11 finding 18: a checkpoint signed by the right key for another log is refused."""
    signer = LedgerSigner.generate("host/evidence-vault/aaaa")
    note = signer.sign(Checkpoint("host/evidence-vault/bbbb", 3, bytes(32)))
    assert open_checkpoint(note, signer.verifier_key()).size == 3
    with pytest.raises(LedgerError, match="not 'host/evidence-vault/aaaa'"):
        open_checkpoint(note, signer.verifier_key(), origin="host/evidence-vault/aaaa")


def test_new_origins_are_unique_and_valid_key_names() -> None:
    """Issue #11 finding 18: each vault derives its own origin (C2SP: unique per log), fit to be
    a checkpoint's first line and a signed-note key name."""
    from vault.ledger.checkpoint import new_origin

    first, second = new_origin("Council NVR 01"), new_origin("Council NVR 01")
    assert first != second
    assert first.startswith("council-nvr-01/evidence-vault/")
    for origin in (first, new_origin(), new_origin("")):
        LedgerSigner.generate(origin)  # a valid key name
        Checkpoint(origin, 0, bytes(32))  # a valid origin line
