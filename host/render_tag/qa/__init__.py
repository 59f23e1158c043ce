"""Quality of a dataset: integrity audit, OpenCV's detectors against the truth, the contact sheet."""
