import pytest
from conftest import SHARED_DATASET

from captcha_ocr.labelled import list_labelled_files


def touch(folder, *names):
    for name in names:
        (folder / name).write_bytes(b"x")


def test_labels_from_file_names(tmp_path):
    touch(tmp_path, "k7dm.png", "ab12_0001.jpg", "notes.md", "data.json")
    items, report = list_labelled_files(tmp_path)
    assert [(p.name, label) for p, label in items] == [("ab12_0001.jpg", "ab12"), ("k7dm.png", "k7dm")]
    assert report.non_images == 2


@pytest.mark.parametrize("name, content", [
    ("labels.txt", "a.png K7DM\n# comment\n\nb.png\tx9\n"),
    ("labels.csv", "a.png,K7DM\nb.png,x9\n"),
])
def test_labels_from_a_mapping_file(tmp_path, name, content):
    touch(tmp_path, "a.png", "b.png", "c.png")
    (tmp_path / name).write_text(content)
    items, report = list_labelled_files(tmp_path, case_fold=True)
    assert [(p.name, label) for p, label in items] == [("a.png", "k7dm"), ("b.png", "x9")]
    assert report.unlabelled == ["c.png"] and report.non_images == 0


def test_images_in_subfolders(tmp_path):
    (tmp_path / "part1").mkdir()
    touch(tmp_path / "part1", "abcd.png")
    items, _ = list_labelled_files(tmp_path)
    assert [label for _, label in items] == ["abcd"]


@pytest.mark.skipif(not SHARED_DATASET.is_dir(), reason="../shared/datasets/captcha_images_v2 is not here")
def test_the_shared_real_dataset_reads_completely():
    items, report = list_labelled_files(SHARED_DATASET)
    assert len(items) == 1040 and report.unlabelled == []
    assert {len(label) for _, label in items} == {5}
    assert "".join(sorted(set("".join(label for _, label in items)))) == "2345678bcdefgmnpwxy"
