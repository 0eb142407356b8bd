"""Datasets: the paper's six image sets plus the embedded ``mnist5k``, and their tf.data pipelines."""

from vampkeras.data.registry import (DATASETS, Dataset, DatasetSpec, dataset_names, default_data_dir,
                                     files_present, load_dataset)

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "dataset_names", "default_data_dir", "files_present",
           "load_dataset"]
