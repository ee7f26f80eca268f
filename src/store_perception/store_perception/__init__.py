"""Cameras and detection: camera drivers, image conversion, the YOLO detector."""
