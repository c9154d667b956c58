"""captcha-ocr: a small, fast captcha-recognition service on TFLite, for Tencent SCF."""

__version__ = "0.1.0"
