"""Dataset readers, verification and the missing-source message."""

import gzip

import numpy as np
import pytest

from training import data


def _write_idx(tmp_path, images, labels):
    img = tmp_path / "images-idx3-ubyte.gz"
    lab = tmp_path / "labels-idx1-ubyte"
    header = (0x803).to_bytes(4, "big") + b"".join(int(v).to_bytes(4, "big") for v in images.shape)
    with gzip.open(img, "wb") as fh:
        fh.write(header + images.tobytes())
    lab.write_bytes((0x801).to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.tobytes())
    return img, lab


def test_idx_reader_handles_gzip_and_plain_files(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    labels = np.array([7, 2, 1], dtype=np.uint8)
    img, lab = _write_idx(tmp_path, images, labels)
    np.testing.assert_array_equal(data.read_idx_images(img), images)
    np.testing.assert_array_equal(data.read_idx_labels(lab), labels)


def test_idx_reader_rejects_a_file_of_the_wrong_kind(tmp_path):
    _, lab = _write_idx(tmp_path, np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8))
    with pytest.raises(ValueError, match="not an IDX3"):
        data.read_idx_images(lab)


def test_mnist_csv_reader_skips_the_header_and_splits_labels(tmp_path):
    rows = np.random.default_rng(0).integers(0, 256, size=(4, 785)).astype(np.uint8)
    path = tmp_path / "mnist.csv"
    path.write_text(
        "label," + ",".join(f"p{i}" for i in range(784)) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n"
    )
    split = data.read_mnist_csv(path)
    assert split.images.shape == (4, 28, 28) and split.images.dtype == np.uint8
    np.testing.assert_array_equal(split.labels, rows[:, 0])
    np.testing.assert_array_equal(split.images.reshape(4, -1), rows[:, 1:])


def test_missing_fashion_source_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "FASHION_DIR", tmp_path / "nowhere")
    with pytest.raises(data.DataSourceMissing, match="apt-get install -y dataset-fashion-mnist"):
        data._read_source("fashion-mnist")


def test_verification_rejects_altered_arrays():
    split = data.Split(np.zeros((60_000, 28, 28), np.uint8), np.zeros(60_000, np.uint8))
    test = data.Split(np.zeros((10_000, 28, 28), np.uint8), np.zeros(10_000, np.uint8))
    with pytest.raises(data.DataChecksumMismatch, match="sha256"):
        data.verify(data.Dataset("fashion-mnist", split, test))


@pytest.mark.parametrize("name", data.DATASETS)
def test_installed_datasets_verify_with_canonical_counts(name, tmp_path):
    dataset = data.load_dataset(name)  # installed by scripts/setup.sh; checksums in training/checksums.json
    assert dataset.train.images.shape == (60_000, 28, 28)
    assert dataset.test.images.shape == (10_000, 28, 28)
    if name == "mnist":
        assert dataset.train.labels[:5].tolist() == [5, 0, 4, 1, 9]
        pixels = dataset.train.images / 255.0
        assert pixels.mean() == pytest.approx(0.1307, abs=1e-4)
        assert pixels.std() == pytest.approx(0.3081, abs=1e-4)
