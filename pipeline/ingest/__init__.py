"""Ingest: transcripts in, speaker turns and coding units out (stages 1-2, ``imri segment``, ``imri corpus``).

Reads text, .docx and the exports of transcription tools, finds speaker turns and their roles, compiles the gold
corpus from its markup, and segments turns into sentences and coding units with a language each. Modules:
``formats`` (layouts of transcription tools), ``transcripts`` (decoding, sidecars, speaker turns),
``speakers`` (speaker labels and who interviews: roles), ``corpus`` (the gold corpus's markup and codings
table), ``segment`` (turns -> sentences -> coding units). Imports only the ground floor."""

import lazy_loader as lazy

# public names, each imported from its module when first used (SPEC 1 lazy loading): importing the
# package costs nothing, and `from pipeline.<stage> import name` never loads the rest of the stage
__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "corpus": [
            "CODING_COLUMNS",
            "Coding",
            "build_coded_folder",
            "build_corpus",
            "compile_file",
            "compile_markup",
            "read_codings",
            "resolve_passages",
            "write_codings",
        ],
        "segment": [
            "SEGMENT_COLUMNS",
            "SegmentConfig",
            "Segmenter",
            "SentenceSplitter",
            "build_french_tokenizer",
            "import_spacy",
            "language_evidence",
            "load_sentence_pipeline",
            "segment_frame",
            "segment_table",
        ],
        "speakers": ["RoleCall", "RoleResolver", "apply_roles", "role_rows"],
        "transcripts": [
            "INTERVIEW_TYPES",
            "Transcript",
            "Turn",
            "collect_transcripts",
            "decode_bytes",
            "find_turns",
            "load_transcript",
            "paragraph_turns",
            "read_sidecar",
            "read_transcript",
            "read_transcripts",
        ],
    },
)
