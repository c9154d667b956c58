"""Assisted labelling: the session (ordering, atomic labels.tsv, resume) and the page in Chromium."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from conftest import MODEL_DIR

from captcha_ocr.evaluation import synthetic_samples
from captcha_ocr.labelled import DatasetError, list_labelled_files
from captcha_ocr.labelling import LABELS_FILE, LabelSession, model_reader, read_labels
from captcha_ocr.registry import load_model

READINGS = {b"a": ("abcd", 0.99), b"b": ("bcde", 0.40), b"c": ("cdef", 0.75), b"d": ("zzzz", 0.97)}


def folder_of(tmp_path, **files: bytes):
    for name, data in files.items():
        (tmp_path / f"{name}.png").write_bytes(data)
    return tmp_path


def fake_reader(data: bytes) -> tuple[str, float]:
    return READINGS[data]


def test_least_confident_first_then_confident_disagreements(tmp_path):
    folder = folder_of(tmp_path, one=b"a", two=b"b", three=b"c", four=b"d")
    (folder / LABELS_FILE).write_text("four.png\tdddd\n")  # labelled, and the model is sure it reads zzzz
    session = LabelSession(folder, fake_reader)
    assert [item.name for item in session.queue] == ["two.png", "three.png", "one.png", "four.png"]
    assert session.queue[-1].review and not session.queue[0].review
    assert session.state()["labelled"] == 1 and session.state()["total"] == 4


def test_every_answer_is_written_at_once_and_a_new_session_resumes(tmp_path):
    folder = folder_of(tmp_path, one=b"a", two=b"b", three=b"c")
    session = LabelSession(folder, fake_reader)
    session.answer("bcde")  # two.png: the pre-fill accepted
    session.skip()  # three.png
    session.answer("abce")  # one.png: corrected
    assert read_labels(folder) == {"two.png": "bcde", "one.png": "abce"}
    assert session.state()["prefill_accuracy"] == 0.5 and session.state()["item"] is None
    assert not list(folder.glob(".*partial"))
    items, _ = list_labelled_files(folder)  # training reads the same file
    assert sorted((p.name, label) for p, label in items) == [("one.png", "abce"), ("two.png", "bcde")]
    session.close()
    resumed = LabelSession(folder, fake_reader)  # a restart: the skipped image, then the disputed label
    assert [(item.name, item.review) for item in resumed.queue] == [("three.png", False), ("one.png", True)]


def test_back_shows_the_previous_image_with_its_label(tmp_path):
    session = LabelSession(folder_of(tmp_path, one=b"a", two=b"b"), fake_reader)
    session.answer("bcdf")
    state = session.back()
    assert state["item"]["name"] == "two.png" and state["item"]["label"] == "bcdf"
    session.answer("bcde")  # answering again replaces the label
    assert read_labels(tmp_path) == {"two.png": "bcde"}


@pytest.mark.parametrize("label", ["", "  ", "a\tb", "a\nb"])
def test_bad_labels_are_refused(tmp_path, label):
    session = LabelSession(folder_of(tmp_path, one=b"a"), fake_reader)
    with pytest.raises(DatasetError):
        session.answer(label)
    assert not (tmp_path / LABELS_FILE).exists()


def test_only_the_folders_images_are_served_and_other_label_files_are_not_overwritten(tmp_path):
    session = LabelSession(folder_of(tmp_path, one=b"a"), fake_reader)
    assert session.image("one.png") == b"a"
    with pytest.raises(DatasetError):
        session.image("../secret.png")
    (tmp_path / "labels.txt").write_text("one.png abcd\n")
    with pytest.raises(DatasetError, match="labels.txt"):
        LabelSession(tmp_path, fake_reader)


def test_the_shipped_model_prefills_its_own_captchas(tmp_path):
    model = load_model(MODEL_DIR)
    samples = synthetic_samples(3, 99, model.config.charset, model.config.lengths)
    for index, sample in enumerate(samples):
        (tmp_path / f"{index:04d}.png").write_bytes(sample.data)
    (tmp_path / "notes.png").write_bytes(b"not an image")
    session = LabelSession(tmp_path, model_reader(model))
    readings = {item.name: item.prediction for item in session.queue}
    assert readings["notes.png"] == "" and session.queue[0].name == "notes.png"  # unreadable: least sure
    assert sum(readings[f"{i:04d}.png"] == s.text for i, s in enumerate(samples)) >= 2


# -- the page in a real browser -------------------------------------------------------------------
@pytest.fixture
def label_server(tmp_path):
    """A labelling server over a folder of fresh captchas; `restart()` kills it and starts another."""
    from captcha_ocr.server import LabelPage, make_wsgi_server

    model = load_model(MODEL_DIR)
    samples = synthetic_samples(4, 4242, model.config.charset, model.config.lengths)
    for index, sample in enumerate(samples):
        (tmp_path / f"{index:04d}.png").write_bytes(sample.data)
    servers = []

    def start():
        for server, session in servers:  # the last one "crashed": its process, and so its lock, are gone
            server.close()
            session.close()
        session = LabelSession(tmp_path, model_reader(model))
        server = make_wsgi_server(LabelPage(session), "127.0.0.1", 0)
        threading.Thread(target=server.run, daemon=True).start()
        servers.append((server, session))
        return f"http://127.0.0.1:{server.effective_port}/label"

    yield tmp_path, start
    for server, session in servers:
        server.close()
        session.close()


@pytest.mark.slow
def test_label_correct_skip_back_crash_and_resume_in_chromium(label_server):
    from test_demo_page import CHROMIUM, LAUNCH_ARGS, sync_api

    if CHROMIUM is None:
        pytest.skip("Chromium not found (apt-get install chromium)")
    folder, start = label_server
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        page = browser.new_page()
        page.goto(start())
        field = page.locator("[data-testid=label]")

        def current() -> str:
            """The file name of the image on the page, once the page has fetched it."""
            page.wait_for_function("() => document.querySelector('#reading').textContent.includes('· ')")
            return page.locator("[data-testid=reading]").inner_text().rsplit("· ", 1)[1]

        def wait_for_change(before: str) -> None:
            page.wait_for_function("(before) => !document.querySelector('#reading').textContent.endsWith(before)",
                                   arg=before)

        first = current()
        prefilled = field.input_value()
        field.press("Enter")  # accept the pre-fill
        wait_for_change(first)
        second = current()
        field.type("abcd")  # typing replaces the selected pre-fill
        field.press("Enter")
        wait_for_change(second)
        third = current()
        field.press("Tab")  # skip
        wait_for_change(third)
        field.press("Shift+Tab")  # back to the skipped one
        page.wait_for_function("(name) => document.querySelector('#reading').textContent.endsWith(name)", arg=third)
        assert read_labels(folder) == {first: prefilled, second: "abcd"}
        assert "2 of 4 images labelled" in page.locator("[data-testid=progress]").inner_text()

        page.goto(start())  # the server "crashed": a new one on the same folder resumes
        resumed = current()
        assert resumed not in (first, second)
        field.fill("wxyz")
        field.press("Enter")
        page.wait_for_function("() => document.querySelector('[data-testid=progress]').textContent"
                               ".startsWith('3 of 4')")
        assert read_labels(folder) == {first: prefilled, second: "abcd", resumed: "wxyz"}
        browser.close()


def test_rerank_keeps_what_was_seen_and_the_current_image(tmp_path):
    folder = folder_of(tmp_path, one=b"a", two=b"b", three=b"c", four=b"d")
    session = LabelSession(folder, fake_reader)  # two (0.40), three (0.75), four (0.97), one (0.99)
    session.answer("bcde")
    flipped = {b"a": ("abcd", 0.10), b"b": ("bcde", 0.9), b"c": ("cdef", 0.95), b"d": ("zzzz", 0.20)}
    session.rerank(lambda data: flipped[data])
    assert [item.name for item in session.queue] == ["two.png", "three.png", "one.png", "four.png"]
    assert session.queue[2].confidence == 0.10  # read again by the new model
    with pytest.raises(DatasetError, match="reload"):
        session.answer("cdef", name="one.png")  # the page is at three.png


@pytest.mark.slow
def test_retraining_in_the_background_re_ranks_with_the_new_model(tmp_path):
    from captcha_ocr.labelling import MIN_LABELS_TO_RETRAIN, Retrainer

    model = load_model(MODEL_DIR)
    samples = synthetic_samples(MIN_LABELS_TO_RETRAIN + 3, 515, model.config.charset, model.config.lengths)
    folder = tmp_path / "captchas"
    folder.mkdir()
    for index, sample in enumerate(samples):
        (folder / f"{index:04d}.png").write_bytes(sample.data)
    session = LabelSession(folder, model_reader(model))
    used = []
    retrainer = Retrainer(session, tmp_path / "runs", 0.01,
                          lambda export: used.append(export) or model_reader(load_model(export)))
    with pytest.raises(DatasetError, match="label at least"):
        retrainer.start()
    truths = {f"{index:04d}.png": sample.text for index, sample in enumerate(samples)}
    for _ in range(MIN_LABELS_TO_RETRAIN):
        session.answer(truths[session.state()["item"]["name"]])
    assert retrainer.start()["state"] == "training"
    retrainer._thread.join(300)
    assert retrainer.status["state"] == "done", retrainer.status
    assert used == [tmp_path / "runs" / Path(retrainer.status["run"]).name / "export"]
    assert (used[0] / "model_quantized.tflite").is_file()
    state = json.loads((used[0].parent / "state.json").read_text())
    assert state["phase"] == "done" and "self_training" in state  # the unlabelled rest was offered


# -- what the labelling server accepts (issue 23): only its own page writes, only its folder is served
@pytest.fixture
def served(tmp_path):
    """A labelling server on loopback over three images, with the page's token; yields (folder, port, token)."""
    from captcha_ocr.server import LabelPage, make_wsgi_server

    (tmp_path / "captchas").mkdir()
    folder = folder_of(tmp_path / "captchas", one=b"a", two=b"b", three=b"c")
    session = LabelSession(folder, fake_reader)
    page = LabelPage(session)
    server = make_wsgi_server(page, "127.0.0.1", 0)
    threading.Thread(target=server.run, daemon=True).start()
    yield folder, server.effective_port, page.token, session
    server.close()
    session.close()


def http(port: int, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, dict | bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": f"127.0.0.1:{port}", **{k.replace("_", "-"): v for k, v in headers.items()}}
    connection.request(method, path, body=body, headers=headers)
    reply = connection.getresponse()
    data = reply.read()
    kind = reply.getheader("Content-Type") or ""
    return reply.status, json.loads(data) if kind.startswith("application/json") else data


def own_page(port: int, token: str) -> dict[str, str]:
    return {"Origin": f"http://127.0.0.1:{port}", "Content_Type": "application/json", "X_Label_Token": token}


def test_the_page_itself_can_answer(served):
    folder, port, token, _ = served
    status, state = http(port, "POST", "/label/answer", json.dumps({"label": "bcde", "name": "two.png"}).encode(),
                         **own_page(port, token))
    assert status == 200 and state["labelled"] == 1 and read_labels(folder) == {"two.png": "bcde"}
    status, page = http(port, "GET", "/label")
    assert status == 200 and token.encode() in page


@pytest.mark.parametrize("change", ["cross-site text/plain", "cross-site json", "no token", "stale token",
                                    "no origin", "form content type"])
def test_writes_from_anywhere_but_the_page_are_refused(served, change):
    folder, port, token, _ = served
    headers = own_page(port, token)
    if change == "cross-site text/plain":  # what any web page the user visits can send without a preflight
        headers = {"Origin": "http://evil.example", "Content_Type": "text/plain"}
    elif change == "cross-site json":
        headers["Origin"] = "http://evil.example"
    elif change == "no token":
        del headers["X_Label_Token"]
    elif change == "stale token":
        headers["X_Label_Token"] = "x" * len(token)
    elif change == "no origin":
        del headers["Origin"]
    else:
        headers["Content_Type"] = "application/x-www-form-urlencoded"
    for action in ("answer", "skip", "back", "retrain"):
        status, body = http(port, "POST", f"/label/{action}", b'{"label": "evil"}', **headers)
        assert status in (403, 415) and body["error"]["code"] in ("Forbidden", "UnsupportedMediaType"), action
    assert not (folder / LABELS_FILE).exists()
    assert http(port, "GET", "/label/state")[1]["position"] == 0  # nothing was skipped either


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1:1", "localhost.evil:{port}"])
def test_a_foreign_host_reads_nothing(served, host):
    _, port, _, _ = served
    for path in ("/label", "/label/state", "/label/image?name=one.png"):
        status, body = http(port, "GET", path, Host=host.format(port=port))
        assert status == 403 and body["error"]["code"] == "Forbidden", path
    assert http(port, "GET", "/label/image?name=one.png", Host=f"localhost:{port}") == (200, b"a")


def test_only_files_inside_the_folder_are_served(served, tmp_path_factory):
    folder, port, _, _ = served
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.png").write_bytes(b"secret")
    (folder / "link.png").symlink_to(outside / "secret.png")
    (folder / LABELS_FILE).write_text(f"../secret.png\tx\n{outside / 'secret.png'}\tx\nlink.png\tx\n")
    for name in ("../secret.png", str(outside / "secret.png"), "link.png", "%2e%2e/secret.png", "three.png/.."):
        status, body = http(port, "GET", f"/label/image?name={name}")
        assert status in (400, 404) and body["error"]["code"] in ("InvalidRequest", "ImageGone"), name


def test_a_deleted_image_and_bad_bodies_get_json_errors(served):
    folder, port, token, _ = served
    (folder / "one.png").unlink()
    status, body = http(port, "GET", "/label/image?name=one.png")
    assert (status, body["error"]["code"]) == (404, "ImageGone")
    for raw in (b"[]", b"null", b"7", b'"label"', b"{", b'{"label": 5}', b'{"label": "x", "name": []}'):
        status, body = http(port, "POST", "/label/answer", raw, **own_page(port, token))
        assert status == 400 and body["error"]["code"] in ("InvalidJson", "InvalidRequest"), raw


def test_a_full_disk_is_told_to_the_page_and_nothing_is_acknowledged(served, monkeypatch):
    import errno

    folder, port, token, session = served

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    status, body = http(port, "POST", "/label/answer", b'{"label": "bcde"}', **own_page(port, token))
    assert (status, body["error"]["code"]) == (507, "LabelsNotSaved") and "No space" in body["error"]["message"]
    monkeypatch.undo()
    assert session.labels == {} and http(port, "GET", "/label/state")[1]["position"] == 0


@pytest.mark.parametrize("label", ["ab\u2028cd", "ab\u2029cd", "ab\x0bcd", "ab\x0ccd", "ab\x1ccd", "ab\x1dcd",
                                   "ab\x1ecd", "ab\x85cd", "ab\rcd"])
def test_labels_that_labels_tsv_cannot_hold_are_refused(served, label):
    folder, port, token, _ = served
    status, body = http(port, "POST", "/label/answer", json.dumps({"label": label}).encode(), **own_page(port, token))
    assert (status, body["error"]["code"]) == (400, "InvalidRequest")
    assert not (folder / LABELS_FILE).exists()


def test_names_that_labels_tsv_cannot_hold_are_skipped_and_the_rest_keep_their_labels(tmp_path):
    folder = folder_of(tmp_path, one=b"a", two=b"b")
    for name in ("tab\there.png", "new\nline.png", "#hash.png", " space.png"):
        (folder / name).write_bytes(b"c")
    with LabelSession(folder, fake_reader) as session:
        assert sorted(session.skipped) == sorted(["tab\there.png", "new\nline.png", "#hash.png", " space.png"])
        assert {item.name for item in session.queue} == {"one.png", "two.png"}
        session.answer("bcde")
        session.answer("abcd")
    with LabelSession(folder, fake_reader) as resumed:
        assert read_labels(folder) == {"two.png": "bcde", "one.png": "abcd"} == resumed.labels


def test_a_second_session_on_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    from captcha_ocr.labelling import FolderInUse

    folder = folder_of(tmp_path, one=b"a")
    first = LabelSession(folder, fake_reader)
    with pytest.raises(FolderInUse):
        LabelSession(folder, fake_reader)
    first.close()
    LabelSession(folder, fake_reader).close()  # free again once the first has closed


def test_images_reached_through_links_are_not_listed(tmp_path):
    (tmp_path / "captchas").mkdir()
    folder = folder_of(tmp_path / "captchas", one=b"a")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "two.png").write_bytes(b"b")
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "three.png").symlink_to(outside / "two.png")
    with LabelSession(folder, fake_reader) as session:
        assert [item.name for item in session.queue] == ["one.png"]


def test_an_arithmetic_models_reading_comes_with_its_answer(tmp_path):
    from conftest import model_variant

    arithmetic = load_model(model_variant(tmp_path / "models", "sums", task="arithmetic"))
    folder = tmp_path / "images"
    folder.mkdir()
    digits = synthetic_samples(1, 7, "23456789", (4,))[0]  # the shipped model reads digits: a number is a question
    (folder / "digits.png").write_bytes(digits.data)
    (folder / "letters.png").write_bytes(synthetic_samples(1, 8, "abcdefgh", (4,))[0].data)
    session = LabelSession(folder, model_reader(arithmetic))
    shown = {}
    for _ in range(2):
        item = session.state()["item"]
        shown[item["name"]] = item
        session.skip()
    assert shown["digits.png"]["prediction"].isdigit()
    assert shown["digits.png"]["answer"] == int(shown["digits.png"]["prediction"])
    assert shown["letters.png"]["answer"] is None and "not a digit" in shown["letters.png"]["answerError"]
    session.close()
    with LabelSession(folder, model_reader(load_model(MODEL_DIR))) as text_session:  # a text model: no answer
        assert "answer" not in text_session.state()["item"]
