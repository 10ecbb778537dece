"""A folder of the user's own images becomes a Dataset: labels, split, resizing, cache, bad files."""

import numpy as np
import pytest
from PIL import Image

from tests.training.image_folders import make_image_folder
from training import folder_data
from training.folder_data import FolderSpec, ImageFolderError, load_folder

pytestmark = pytest.mark.usefixtures("folder_cache")


def spec(root, size=(24, 32), channels=3, **options) -> FolderSpec:
    return FolderSpec(root, size, channels, **options)


def test_class_sub_folders_become_labels_and_a_share_is_held_out(tmp_path):
    root = make_image_folder(tmp_path / "shapes", classes=("blue", "red"), per_class=20)
    dataset = load_folder(spec(root))
    assert dataset.name == "shapes" and dataset.classes == ("blue", "red")
    assert dataset.image_shape == (3, 24, 32) and dataset.train.images.dtype == np.uint8
    assert len(dataset.train.images) + len(dataset.test.images) == 40
    assert 1 <= len(dataset.test.images) <= 12
    assert set(dataset.train.labels.tolist()) == {0, 1}
    # Red images are red: the label follows the sub-folder.
    red = dataset.train.images[dataset.train.labels == 1].astype(int)
    assert (red[:, 0] - red[:, 2]).max() > 100


def test_the_split_of_a_file_does_not_change_when_other_files_are_added(tmp_path):
    root = make_image_folder(tmp_path / "grow", classes=("red",), per_class=30)
    before = {p.relative for p in folder_data.plan(spec(root), folder_data.list_images(root))[0] if p.split == "test"}
    make_image_folder(tmp_path / "grow", classes=("blue",), per_class=30, seed=1)
    after = {p.relative for p in folder_data.plan(spec(root), folder_data.list_images(root))[0] if p.split == "test"}
    assert before and before == {r for r in after if r.startswith("red/")}


def test_an_unreadable_file_is_skipped_and_counted(tmp_path, caplog):
    root = make_image_folder(tmp_path / "with-junk", per_class=6)
    (root / "red" / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with caplog.at_level("WARNING"):
        dataset = load_folder(spec(root))
    assert dataset.source["unreadable_skipped"] == 1 and dataset.source["image_files"] == 13
    assert len(dataset.train.images) + len(dataset.test.images) == 12
    assert "skipped 1 unreadable" in caplog.text and "truncated.png" in caplog.text


def test_transparent_pixels_become_the_background_and_pad_keeps_the_aspect_ratio(tmp_path):
    pixels = np.zeros((10, 20, 4), np.uint8)  # 20 wide, 10 high; left half opaque red, right half transparent
    pixels[:, :10] = (255, 0, 0, 255)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "wide.png")
    image = folder_data.decode(tmp_path / "wide.png", spec(tmp_path, size=(16, 16), background=(0, 0, 255)))
    assert image.shape == (3, 16, 16)
    assert (image[:, :3, :] == np.array([0, 0, 255])[:, None, None]).all()  # padding above: the background
    assert image[:, 8, 2].tolist() == [255, 0, 0]  # the opaque half
    assert image[:, 8, 13].tolist() == [0, 0, 255]  # the transparent half shows the background


def test_crop_covers_the_frame_and_cuts_the_long_side(tmp_path):
    pixels = np.full((10, 30, 3), (0, 200, 0), np.uint8)  # green ends, a red middle third
    pixels[:, 10:20] = (200, 0, 0)
    Image.fromarray(pixels).save(tmp_path / "strip.png")
    image = folder_data.decode(tmp_path / "strip.png", spec(tmp_path, size=(8, 8), resize="crop"))
    assert image.shape == (3, 8, 8)
    assert (image[0, :, 2:6] > 150).all() and (image[1, :, 2:6] < 50).all()  # the centre is the red third


def test_grey_images_in_one_folder_have_no_classes(tmp_path):
    root = make_image_folder(tmp_path / "flat", classes=None, per_class=10)
    dataset = load_folder(spec(root, size=(20, 20), channels=1))
    assert dataset.classes == () and dataset.image_shape == (1, 20, 20)
    assert not dataset.train.labels.any()


def test_an_empty_folder_fails_with_a_clear_message(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    with pytest.raises(ImageFolderError, match=r"no images \(\.png, \.jpg, \.jpeg, \.webp\)"):
        load_folder(spec(tmp_path / "empty"))


def test_a_folder_of_only_unreadable_files_fails_with_a_clear_message(tmp_path):
    (tmp_path / "junk").mkdir()
    for i in range(3):
        (tmp_path / "junk" / f"{i}.png").write_text("text")
    with pytest.raises(ImageFolderError, match="none of its 3 image files could be read"):
        load_folder(spec(tmp_path / "junk"))


def test_images_both_inside_and_outside_class_folders_are_refused(tmp_path):
    root = make_image_folder(tmp_path / "mixed", per_class=3)
    Image.new("RGB", (10, 10)).save(root / "loose.png")
    with pytest.raises(ImageFolderError, match="loose.png"):
        load_folder(spec(root))


def test_train_and_test_sub_folders_are_the_split(tmp_path):
    make_image_folder(tmp_path / "given" / "train", per_class=5)
    make_image_folder(tmp_path / "given" / "test", per_class=2, seed=1)
    dataset = load_folder(spec(tmp_path / "given"))
    assert (len(dataset.train.images), len(dataset.test.images)) == (10, 4)
    assert dataset.classes == ("blue", "red") and dataset.source["split"] == "train/ and test/ sub-folders"


def test_decoded_arrays_come_from_the_cache_until_a_file_changes(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "cached", per_class=4)
    first = load_folder(spec(root))
    decoded = []
    real_decode = folder_data.decode
    monkeypatch.setattr(folder_data, "decode", lambda path, s: decoded.append(path) or real_decode(path, s))

    again = load_folder(spec(root))
    assert decoded == []
    np.testing.assert_array_equal(again.train.images, first.train.images)

    Image.new("RGB", (30, 30), (0, 0, 0)).save(root / "red" / "red-0.png")  # new bytes, new mtime
    load_folder(spec(root))
    assert len(decoded) == 8
    load_folder(spec(root, size=(16, 16)))  # other settings, another cache entry
    assert len(decoded) == 16


def test_a_cache_whose_arrays_were_altered_is_decoded_again(tmp_path, folder_cache):
    root = make_image_folder(tmp_path / "tampered", per_class=4)
    first = load_folder(spec(root))
    cache = folder_cache / first.source["cache"].rsplit("/", 1)[-1]
    with np.load(cache) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["train_images"] = arrays["train_images"] // 2
    np.savez(cache, **arrays)
    np.testing.assert_array_equal(load_folder(spec(root)).train.images, first.train.images)
