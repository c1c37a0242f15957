"""Data floor: loaders for the paper's data sets and the generated point-cloud task.

Every loader takes ``data_dir``, the root of the user's data folder (for example one holding
``mnist/``, ``cifar10/``, ``pv.csv``, ``sb.csv`` and ``walker/``). Nothing is ever fetched
unless a loader is called with ``download=True``; a missing file raises
:class:`DataNotFoundError` naming the file, the folders searched and the official source.

Time-series loaders return time-first arrays ``(time, batch, features)`` with elapsed times
``(time, batch)`` in sample periods; :class:`SequenceDataset` and :func:`collate_time_first`
batch them for a ``DataLoader``.
"""

from .cifar10 import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR10Dataset,
    load_cifar10,
    read_cifar10_batch,
)
from .download import (
    Checksum,
    ChecksumError,
    DataFormatError,
    DataNotFoundError,
    DownloadError,
    download_url,
    file_digest,
    verify_checksum,
)
from .images import NormalizedImageDataset
from .mnist import MNIST_MEAN, MNIST_STD, MNISTDataset, load_mnist, read_idx
from .plane_vibration import PV_SAMPLE_RATE_HZ, load_plane_vibration, read_plane_vibration_csv
from .pointcloud import make_pointcloud
from .sequences import SequenceDataset, SequenceSplit, SequenceSplits, collate_time_first
from .silverbox import SilverboxSeries, SilverboxSplits, load_silverbox, read_silverbox_csv
from .walker import WALKER_FEATURES, find_walker_files, load_walker, split_walker_files

__all__ = [
    # errors and fetching
    "DataNotFoundError",
    "DataFormatError",
    "DownloadError",
    "ChecksumError",
    "Checksum",
    "download_url",
    "file_digest",
    "verify_checksum",
    # images
    "load_mnist",
    "read_idx",
    "MNISTDataset",
    "MNIST_MEAN",
    "MNIST_STD",
    "load_cifar10",
    "read_cifar10_batch",
    "CIFAR10Dataset",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10_CLASSES",
    "NormalizedImageDataset",
    # sequences
    "load_plane_vibration",
    "read_plane_vibration_csv",
    "PV_SAMPLE_RATE_HZ",
    "load_silverbox",
    "read_silverbox_csv",
    "SilverboxSeries",
    "SilverboxSplits",
    "load_walker",
    "find_walker_files",
    "split_walker_files",
    "WALKER_FEATURES",
    "SequenceSplit",
    "SequenceSplits",
    "SequenceDataset",
    "collate_time_first",
    # generated
    "make_pointcloud",
]
