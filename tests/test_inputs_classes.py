"""Issue #8, class sets: classes that cannot be learned or scored are named, never silently
kept, dropped or mixed up."""

from collections import Counter

import pytest

from kerasclf.config import DataConfig
from kerasclf.data import build_dataset
from kerasclf.errors import ConfigError, DataError


def data(source, **kwargs):
    kwargs.setdefault("val_fraction", 0.0)
    return DataConfig(source=source, **kwargs)


def test_test_class_absent_from_train_is_an_error_naming_it(tmp_path, make_image_folder):
    make_image_folder(tmp_path / "root" / "train", {"cat": 3, "dog": 3})
    make_image_folder(tmp_path / "root" / "test", {"cat": 2, "dog": 2, "horse": 2})
    with pytest.raises(DataError, match="'horse'") as info:
        build_dataset(data(f"folder:{tmp_path / 'root'}"))
    assert "test split" in str(info.value) and str(tmp_path / "root" / "train") in str(info.value)


def test_val_class_differing_only_in_case_is_an_error_naming_both(tmp_path, make_image_folder):
    make_image_folder(tmp_path / "root" / "train", {"Cat": 3, "dog": 3})
    make_image_folder(tmp_path / "root" / "val", {"cat": 2, "dog": 2})
    with pytest.raises(DataError, match="only in letter case") as info:
        build_dataset(data(f"folder:{tmp_path / 'root'}"))
    assert "val/cat" in str(info.value) and "train/Cat" in str(info.value)


def test_empty_extra_class_folder_in_test_is_ignored(tmp_path, make_image_folder):
    make_image_folder(tmp_path / "root" / "train", {"cat": 3, "dog": 3})
    make_image_folder(tmp_path / "root" / "test", {"cat": 2, "dog": 2})
    (tmp_path / "root" / "test" / "horse").mkdir()
    ds = build_dataset(data(f"folder:{tmp_path / 'root'}"))
    assert ds.info.class_names == ["cat", "dog"] and len(ds.test) == 4


def test_class_folder_without_readable_image_is_dropped_with_a_warning(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "root", {"a": 3, "c": 3})
    (root / "b").mkdir()
    (root / "b" / "x.png").write_bytes(b"garbage")
    (root / "b" / "y.jpg").write_bytes(b"\xff\xd8 also garbage")
    with pytest.warns(UserWarning, match=r"Dropped 1 class folder\(s\) with no readable image .*: b\.") as record:
        ds = build_dataset(data(f"folder:{root}"))
    assert ds.info.class_names == ["a", "c"]
    assert Counter(ds.train.y.tolist()) == {0: 3, 1: 3}  # labels renumbered, c is 1
    assert any("x.png" in str(w.message) for w in record)  # the unreadable files are named too


def test_class_folder_with_no_files_is_dropped_with_a_warning(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "root", {"a": 3, "b": 3})
    (root / "unsorted").mkdir()
    with pytest.warns(UserWarning, match="unsorted"):
        ds = build_dataset(data(f"folder:{root}"))
    assert ds.info.class_names == ["a", "b"]


def test_test_images_of_a_class_with_no_readable_training_image_is_an_error(tmp_path, make_image_folder):
    make_image_folder(tmp_path / "root" / "train", {"a": 3, "b": 3})
    (tmp_path / "root" / "train" / "c").mkdir()
    (tmp_path / "root" / "train" / "c" / "x.png").write_bytes(b"garbage")
    make_image_folder(tmp_path / "root" / "test", {"a": 1, "b": 1, "c": 2})
    with pytest.warns(UserWarning), pytest.raises(DataError, match="test split has images of class.*c"):
        build_dataset(data(f"folder:{tmp_path / 'root'}"))


def test_single_class_folder_is_refused(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "root", {"only": 6})
    with pytest.raises(DataError, match="only the class 'only'.*at least 2 classes"):
        build_dataset(data(f"folder:{root}"))


def test_single_class_left_after_dropping_empty_ones_is_refused(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "root", {"a": 4})
    (root / "b").mkdir()
    with pytest.warns(UserWarning, match="Dropped"), pytest.raises(DataError, match="at least 2 classes"):
        build_dataset(data(f"folder:{root}"))


def test_single_class_chosen_by_data_classes_is_refused():
    with pytest.raises(DataError, match="after data.classes"):
        build_dataset(data("synthetic", classes=["class1"]))


def test_class_with_one_image_is_named_and_the_split_stays_stratified(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "root", {"a": 10, "b": 10, "rare": 1})
    with pytest.warns(UserWarning, match="'rare' have a single image, which is kept for training"):
        ds = build_dataset(data(f"folder:{root}", val_fraction=0.2))
    names = ds.info.class_names
    assert Counter(names[y] for y in ds.val.y) == {"a": 2, "b": 2}  # stratified over a and b
    assert Counter(names[y] for y in ds.train.y) == {"a": 8, "b": 8, "rare": 1}


def test_carved_split_smaller_than_the_class_count_gets_one_image_per_class(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "root", {c: 4 for c in "abcdef"})
    with pytest.warns(UserWarning, match="0.1 of 24 images is 3, fewer than the 6 classes: carving 6"):
        ds = build_dataset(data(f"folder:{root}", val_fraction=0.1))
    assert sorted(ds.val.y.tolist()) == list(range(6)) and len(ds.train) == 18


def test_test_fraction_names_itself_when_classes_are_too_small(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "root", {"a": 2, "b": 2, "c": 1})
    with pytest.warns(UserWarning, match="data.test_fraction=0.5: class\\(es\\) 'c'"):
        ds = build_dataset(data(f"folder:{root}", test_fraction=0.5))
    assert sorted(ds.test.y.tolist()) == [0, 1]


def test_data_classes_differing_only_in_case_is_a_config_error_naming_the_class(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "root", {"a": 2, "b": 2, "c": 2})
    with pytest.raises(ConfigError, match="'A'.*case-sensitive: did you mean \"a\""):
        build_dataset(data(f"folder:{root}", classes=["A", "b"]))
