"""imri-autocode: local-first, NLP-assisted coding of interview transcripts with the IMRI framework."""

__version__ = "0.1.0"
