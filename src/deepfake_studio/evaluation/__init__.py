"""Measurement: independent judges (ASR, speaker verification) and evaluation harnesses.

Nothing here is used to make what a user receives; it only measures it.
Needs the optional extra: pip install 'deepfake-studio[eval]'.
"""
