"""Every label of the review app, in English and French (the codebook brings its own names).

Templates read them as ``t.key`` (``t.key.format(n=...)`` where a number goes in); a key missing from
one language is an error at render time, never a silent blank. The codebook's definitions and
include/exclude hints exist in English only: the French interface says so (``definitions_english_only``)
rather than showing a translation nobody checked.
"""

from __future__ import annotations

import math

EN: dict[str, str] = {
    "app_name": "imri review",
    "model": "model",
    "reviewer": "reviewer",
    "blind": "blind",
    "blind_help": (
        "You see only your own decisions; the agreement view compares you with another reviewer once both "
        "of you have decided the whole queue."
    ),
    "other_language": "Français",
    "switch_language": "Passer en français (L)",
    "shortcuts": "Shortcuts",
    "views": "Views",
    "view_queue": "Queue",
    "view_browse": "Browse",
    "view_transcript": "Transcript",
    "view_agreement": "Agreement",
    "view_history": "History",
    "set_aside": (
        "{n} earlier decision(s) set aside: they were made on segments that are not in this run (another "
        "transcript, or the same one cut differently). review.db keeps them; the queue, export and "
        "training leave them out."
    ),
    "missing_segment": "This run has no such segment; here is the queue instead.",
    # filters
    "filters": "Filters",
    "f_impact": "Impact",
    "f_category": "Category",
    "f_source": "Transcript",
    "f_language": "Language",
    "f_role": "Speaker role",
    "f_status": "Status",
    "f_reviewer": "Reviewer",
    "any": "any",
    "participants": "participants",
    "apply": "Apply",
    "clear": "Clear filters",
    "filtered": "filtered",
    "language_en": "English",
    "language_fr": "French",
    "role_participant": "participant",
    "role_interviewer": "interviewer",
    "status_queued": "queued",
    "status_suggested": "suggested",
    "status_auto_accepted": "auto-accepted",
    "status_reviewed": "reviewed",
    "status_skipped": "skipped",
    # the review panel
    "characters": "characters",
    "queue_position": "queue #{n} of {of}",
    "not_in_queue": "not in the review queue",
    "mode_queue": "queue order",
    "mode_browse": "browsing",
    "previous": "previous",
    "next": "next",
    "in_transcript": "in the transcript",
    "decided": "Decided:",
    "decided_note": "a new action replaces it, the history keeps both",
    "interviewer_question": "Interviewer's question",
    "model_suggests": "Model:",
    "no_impact": "no impact",
    "accept": "Accept",
    "reject": "Reject: no impact",
    "save_ticked": "Save ticked codes",
    "skip": "Skip",
    "memo": "Memo",
    "memo_hint": "saved with your next action",
    "memo_placeholder": "Why? Doubts, links to other passages…",
    "save_memo": "Save memo only",
    "codes": "Codes",
    "codes_hint": "tick with 1–9, / (search) or the mouse, then C; D: definitions",
    "search_label": "Find an impact",
    "search_placeholder": "type a name, in English or French",
    "search_hint": "↑ ↓ choose, Enter ticks, Esc leaves",
    "definitions_english_only": "",
    "suggested": "suggested",
    "probability_and_cutoff": "probability / the model's cut-off (codes at or above it are suggested)",
    "cutoff": "cut-off",
    "process": "process",
    "include": "Include",
    "exclude": "Exclude",
    "none_match_title": "Nothing left here",
    "none_match_text": "No segment matches these filters.",
    "queue_done": "Queue done",
    "queue_done_text": "Every one of the {n} queued segments has a decision.",
    "export_hint": "Export the decisions, or retrain with them:",
    # stats
    "progress_help": "queued segments with a decision",
    "reviewed_of_queue": "reviewed",
    "n_skipped": "{n} skipped",
    "n_outside": "+{n} outside the queue",
    "agreement_help": "model vs reviewers over decided segments: exact = same set of codes; F1 over codes",
    "model_agreement": "agreement with the model:",
    "exact": "exact",
    "code_f1": "code F1",
    "no_decision_yet": "agreement: no decision yet",
    # history
    "history": "History",
    "undo": "Undo",
    "undo_help": "Take back your latest action (U); the history keeps both",
    "undone": "undone",
    "back": "back",
    "none_yet": "None yet.",
    "all_history": "All actions",
    "n_codes": "{n} code(s)",
    "action_accept": "accept",
    "action_reject": "reject",
    "action_change": "change",
    "action_skip": "skip",
    "action_memo": "memo",
    "action_undo": "undo",
    "history_title": "History of actions",
    "history_intro": "Every action in this run, newest first: decisions, skips, memos and undos. Nothing is deleted.",
    "when": "when (UTC)",
    "action": "action",
    "segment": "segment",
    # browse
    "browse_title": "Browse segments",
    "browse_count": "{n} segments",
    "page_of": "page {n} of {of}",
    "list_keys": "J / K move, Enter opens",
    "speaker": "Speaker",
    "text": "Text",
    "model_codes": "Model",
    "decision": "Decision",
    "previous_page": "previous page",
    "next_page": "next page",
    # transcript
    "open": "Open",
    "transcript_summary": "{turns} turns · {segments} participant segments · {queued} waiting · {reviewed} reviewed",
    "margin_legend": "In the margin:",
    "accepted": "accepted",
    # agreement
    "agreement_title": "Agreement",
    "agreement_intro": (
        "Each reviewer against the model over the segments they decided; then, for two reviewers who "
        "decided the same segments, Cohen's kappa between them and between the model and each of them, "
        "on exactly those segments."
    ),
    "agreement_blind": (
        "Blind review: you have both decided every queued segment; the figures below are over the queue. "
        "No other reviewer's decision on a segment is shown."
    ),
    "agreement_blind_waiting": (
        "Blind review: nothing of another reviewer is shown until both of you have decided every queued segment."
    ),
    "agreement_blind_left": "{n} queued segments left for you.",
    "reviewers_and_model": "Reviewers and the model",
    "decisions": "decisions",
    "exact_with_model": "same codes as the model",
    "shared_segments": "{n} segments in common ({transcripts} transcripts)",
    "cohen_kappa": "Cohen's κ",
    "kappa_pooled": "pooled over segments × impacts",
    "kappa_mean": "mean over impacts",
    "percent_agreement": "% agreement (pooled)",
    "per_impact": "Per impact",
    "impact": "Impact",
    "used_by": "used by {name}",
    "unknown_code": "unknown code",
    "agreement_none": "No two reviewers have decided the same segments yet.",
    "kappa_note": (
        "Kappa is 1 for perfect agreement and 0 for agreement no better than chance; it is undefined (—) "
        "for an impact that no one used on these segments. Figures over a few segments are unstable."
    ),
    # keyboard help
    "keyboard": "Keyboard",
    "key_accept": "accept the model's codes",
    "key_reject": "reject: no impact",
    "key_numbers": "tick / untick one of the nine most probable impacts",
    "key_search": "find any impact by name (English or French), Enter ticks it",
    "key_change": "save the ticked codes (change)",
    "key_skip": "skip for now",
    "key_memo": "write a memo (sent with the next action; Esc leaves it, Ctrl+Enter saves it alone)",
    "key_undo": "undo your latest action",
    "key_next_previous": "next / previous segment (queue, list or transcript)",
    "key_open": "open the chosen segment (lists and transcript)",
    "key_back": "back to your last decision",
    "key_definitions": "show / hide codebook definitions",
    "key_filters": "go to the filters",
    "key_views": "queue, browse, transcript, agreement, history",
    "key_language": "English / français",
    "key_help": "this help",
}

FR: dict[str, str] = {
    "app_name": "révision imri",
    "model": "modèle",
    "reviewer": "réviseur·e",
    "blind": "à l'aveugle",
    "blind_help": (
        "Vous ne voyez que vos décisions; la vue Accord vous compare à un·e autre réviseur·e une fois que vous "
        "avez tous deux décidé toute la file."
    ),
    "other_language": "English",
    "switch_language": "Switch to English (L)",
    "shortcuts": "Raccourcis",
    "views": "Vues",
    "view_queue": "File",
    "view_browse": "Parcourir",
    "view_transcript": "Transcription",
    "view_agreement": "Accord",
    "view_history": "Historique",
    "set_aside": (
        "{n} décision(s) antérieure(s) mise(s) de côté : elles portent sur des segments absents de cette "
        "exécution (une autre transcription, ou la même découpée autrement). review.db les garde; la file, "
        "l'export et l'entraînement les ignorent."
    ),
    "missing_segment": "Cette exécution n'a pas ce segment; voici la file à la place.",
    "filters": "Filtres",
    "f_impact": "Impact",
    "f_category": "Catégorie",
    "f_source": "Transcription",
    "f_language": "Langue",
    "f_role": "Rôle du locuteur",
    "f_status": "Statut",
    "f_reviewer": "Réviseur·e",
    "any": "tous",
    "participants": "participant·es",
    "apply": "Appliquer",
    "clear": "Effacer les filtres",
    "filtered": "filtré",
    "language_en": "anglais",
    "language_fr": "français",
    "role_participant": "participant·e",
    "role_interviewer": "intervieweur·euse",
    "status_queued": "en file",
    "status_suggested": "codes suggérés",
    "status_auto_accepted": "accepté d'office",
    "status_reviewed": "révisé",
    "status_skipped": "passé",
    "characters": "caractères",
    "queue_position": "file nº {n} sur {of}",
    "not_in_queue": "hors de la file de révision",
    "mode_queue": "ordre de la file",
    "mode_browse": "parcours",
    "previous": "précédent",
    "next": "suivant",
    "in_transcript": "dans la transcription",
    "decided": "Décision :",
    "decided_note": "une nouvelle action la remplace, l'historique garde les deux",
    "interviewer_question": "Question de l'intervieweur·euse",
    "model_suggests": "Modèle :",
    "no_impact": "aucun impact",
    "accept": "Accepter",
    "reject": "Rejeter : aucun impact",
    "save_ticked": "Enregistrer les codes cochés",
    "skip": "Passer",
    "memo": "Mémo",
    "memo_hint": "enregistré avec votre prochaine action",
    "memo_placeholder": "Pourquoi? Doutes, liens vers d'autres passages…",
    "save_memo": "Enregistrer le mémo seul",
    "codes": "Codes",
    "codes_hint": "cochez avec 1–9, / (recherche) ou la souris, puis C; D : définitions",
    "search_label": "Trouver un impact",
    "search_placeholder": "tapez un nom, en français ou en anglais",
    "search_hint": "↑ ↓ choisir, Entrée coche, Échap sort",
    "definitions_english_only": (
        "Les définitions et les consignes d'inclusion et d'exclusion du livre de codes n'existent qu'en "
        "anglais : elles sont montrées en anglais, sans traduction."
    ),
    "suggested": "suggéré",
    "probability_and_cutoff": "probabilité / seuil du modèle (les codes au seuil ou au-dessus sont suggérés)",
    "cutoff": "seuil",
    "process": "processus",
    "include": "Inclure (en anglais)",
    "exclude": "Exclure (en anglais)",
    "none_match_title": "Plus rien ici",
    "none_match_text": "Aucun segment ne correspond à ces filtres.",
    "queue_done": "File terminée",
    "queue_done_text": "Chacun des {n} segments de la file a une décision.",
    "export_hint": "Exportez les décisions, ou réentraînez avec elles :",
    "progress_help": "segments de la file qui ont une décision",
    "reviewed_of_queue": "révisés",
    "n_skipped": "{n} passé(s)",
    "n_outside": "+{n} hors de la file",
    "agreement_help": (
        "modèle et réviseur·es sur les segments décidés : identique = même ensemble de codes; F1 sur les codes"
    ),
    "model_agreement": "accord avec le modèle :",
    "exact": "identiques",
    "code_f1": "F1 des codes",
    "no_decision_yet": "accord : aucune décision pour l'instant",
    "history": "Historique",
    "undo": "Annuler",
    "undo_help": "Reprendre votre dernière action (U); l'historique garde les deux",
    "undone": "annulée",
    "back": "retour",
    "none_yet": "Rien pour l'instant.",
    "all_history": "Toutes les actions",
    "n_codes": "{n} code(s)",
    "action_accept": "acceptation",
    "action_reject": "rejet",
    "action_change": "modification",
    "action_skip": "passé",
    "action_memo": "mémo",
    "action_undo": "annulation",
    "history_title": "Historique des actions",
    "history_intro": (
        "Toutes les actions de cette exécution, les plus récentes d'abord : décisions, segments passés, "
        "mémos et annulations. Rien n'est effacé."
    ),
    "when": "quand (UTC)",
    "action": "action",
    "segment": "segment",
    "browse_title": "Parcourir les segments",
    "browse_count": "{n} segments",
    "page_of": "page {n} sur {of}",
    "list_keys": "J / K pour se déplacer, Entrée pour ouvrir",
    "speaker": "Locuteur",
    "text": "Texte",
    "model_codes": "Modèle",
    "decision": "Décision",
    "previous_page": "page précédente",
    "next_page": "page suivante",
    "open": "Ouvrir",
    "transcript_summary": (
        "{turns} tours de parole · {segments} segments de participant·es · {queued} en attente · {reviewed} révisés"
    ),
    "margin_legend": "Dans la marge :",
    "accepted": "accepté",
    "agreement_title": "Accord",
    "agreement_intro": (
        "Chaque réviseur·e face au modèle sur les segments qu'il ou elle a décidés; puis, pour deux "
        "réviseur·es qui ont décidé les mêmes segments, le kappa de Cohen entre eux et entre le modèle et "
        "chacun, sur ces segments-là exactement."
    ),
    "agreement_blind": (
        "Révision à l'aveugle : vous avez tous deux décidé chaque segment de la file; les chiffres ci-dessous "
        "portent sur la file. Aucune décision d'un·e autre réviseur·e sur un segment n'est montrée."
    ),
    "agreement_blind_waiting": (
        "Révision à l'aveugle : rien d'un·e autre réviseur·e n'est montré tant que vous n'avez pas tous deux "
        "décidé chaque segment de la file."
    ),
    "agreement_blind_left": "Il vous reste {n} segments de la file.",
    "reviewers_and_model": "Réviseur·es et modèle",
    "decisions": "décisions",
    "exact_with_model": "mêmes codes que le modèle",
    "shared_segments": "{n} segments en commun ({transcripts} transcriptions)",
    "cohen_kappa": "κ de Cohen",
    "kappa_pooled": "regroupé sur segments × impacts",
    "kappa_mean": "moyenne sur les impacts",
    "percent_agreement": "% d'accord (regroupé)",
    "per_impact": "Par impact",
    "impact": "Impact",
    "used_by": "utilisé par {name}",
    "unknown_code": "code inconnu",
    "agreement_none": "Aucun·e réviseur·e n'a encore décidé les mêmes segments qu'un·e autre.",
    "kappa_note": (
        "Le kappa vaut 1 pour un accord parfait et 0 pour un accord pas meilleur que le hasard; il n'est "
        "pas défini (—) pour un impact que personne n'a utilisé sur ces segments. Sur peu de segments, les "
        "chiffres sont instables."
    ),
    "keyboard": "Clavier",
    "key_accept": "accepter les codes du modèle",
    "key_reject": "rejeter : aucun impact",
    "key_numbers": "cocher / décocher un des neuf impacts les plus probables",
    "key_search": "trouver n'importe quel impact par son nom (français ou anglais), Entrée le coche",
    "key_change": "enregistrer les codes cochés (modification)",
    "key_skip": "passer pour l'instant",
    "key_memo": "écrire un mémo (envoyé avec la prochaine action; Échap en sort, Ctrl+Entrée l'enregistre seul)",
    "key_undo": "annuler votre dernière action",
    "key_next_previous": "segment suivant / précédent (file, liste ou transcription)",
    "key_open": "ouvrir le segment choisi (listes et transcription)",
    "key_back": "revenir à votre dernière décision",
    "key_definitions": "afficher / masquer les définitions du livre de codes",
    "key_filters": "aller aux filtres",
    "key_views": "file, parcourir, transcription, accord, historique",
    "key_language": "English / français",
    "key_help": "cette aide",
}

# blind review and reconciling two reviewers (issue 22)
EN |= {
    "blind_panel_note": (
        "Blind review: the model's codes, confidences and order are hidden, and nothing is ticked in advance. "
        "Tick the codes you see and save them (C), or reject (R)."
    ),
    "disagreements_title": "Disagreements to reconcile: {n}",
    "reconcile_next": "Reconcile the next disagreement",
    "all_reconciled": "Every disagreement has a consensus.",
    "to_reconcile": "to reconcile",
    "consensus": "consensus",
    "consensus_by": "decided by {name}",
    "reconcile_title": "Disagreement {n} of {of}",
    "reconcile_left": "{n} without a consensus",
    "consensus_codes": "Consensus codes",
    "consensus_hint": "ticked: the codes both chose; saved as {name}",
    "save_consensus": "Save the consensus",
}
FR |= {
    "blind_panel_note": (
        "Révision à l'aveugle : les codes, les confiances et l'ordre du modèle sont cachés, et rien n'est coché "
        "d'avance. Cochez les codes que vous voyez et enregistrez-les (C), ou rejetez (R)."
    ),
    "disagreements_title": "Désaccords à résoudre : {n}",
    "reconcile_next": "Résoudre le désaccord suivant",
    "all_reconciled": "Chaque désaccord a un consensus.",
    "to_reconcile": "à résoudre",
    "consensus": "consensus",
    "consensus_by": "décidé par {name}",
    "reconcile_title": "Désaccord {n} sur {of}",
    "reconcile_left": "{n} sans consensus",
    "consensus_codes": "Codes du consensus",
    "consensus_hint": "cochés : les codes choisis par les deux; enregistré comme {name}",
    "save_consensus": "Enregistrer le consensus",
}

# an app that explains itself: the legend, type-ahead, history, the finished screen (issue 22)
EN |= {
    "legend_confidence_term": "confidence",
    "legend_confidence": (
        "the first number: how likely the model thinks the impact is present, from 0 to 1 (the bar shows it)"
    ),
    "legend_cutoff_term": "cut-off",
    "legend_cutoff": (
        "the confidence at or above which the model suggests the impact (the red mark on the bar); each impact "
        "has its own, chosen in training. Suggested impacts are ticked and in bold."
    ),
    "legend_queue_term": "queue order",
    "legend_queue": (
        "segments come where your decision changes the most first: a confidence near its cut-off, a rare impact, "
        "two impacts close together. Impacts are listed from the most to the least likely."
    ),
    "no_match": "No impact matches. Try another word, in English or French.",
    "session_title": "Your session",
    "session_reviewed": "segments you decided",
    "session_changed": "where you changed the model's codes",
    "session_agreement": "same codes as the model",
    "session_time": "time spent",
    "minutes": "{n} min (pauses over 10 minutes left out)",
    "finished_blind": (
        "Blind review: once the other reviewer has finished too, the agreement view lists the disagreements "
        "to reconcile."
    ),
    "export_title": "Export the final coding",
    "export_text": (
        "The whole run: your decisions, consensus where there is one, and the model's codes on the text nobody "
        'reviewed (coder "imri model …", marked unreviewed, with its confidence), codes nested under their '
        "categories. NVivo, ATLAS.ti, MAXQDA and QualCoder open the .qdpx file."
    ),
    "export_blind": (
        "Blind review: the app does not offer the final coding (it holds the model's codes and every reviewer's "
        "decisions). Once both of you have finished and reconciled, in a terminal:"
    ),
    "download_qdpx": "Download .qdpx (REFI-QDA)",
    "download_csv": "Download .csv",
    "export_command": "Or in a terminal:",
    "retrain_title": "Retrain with your decisions",
    "retrain_text": "The model was trained on the gold set below; this trains a new model on it plus your decisions:",
    "retrain_note": (
        "It writes a new model folder, models/<name>-<version>, and never writes over another model "
        "(run it in the project folder)."
    ),
    "retrain_unknown": (
        "The run does not say which gold set its model was trained on, so no retraining command is offered."
    ),
}
FR |= {
    "legend_confidence_term": "confiance",
    "legend_confidence": (
        "le premier nombre : la probabilité, selon le modèle, que l'impact soit présent, de 0 à 1 (la barre la montre)"
    ),
    "legend_cutoff_term": "seuil",
    "legend_cutoff": (
        "la confiance à partir de laquelle le modèle suggère l'impact (le trait rouge sur la barre); chaque impact a "
        "le sien, choisi à l'entraînement. Les impacts suggérés sont cochés et en gras."
    ),
    "legend_queue_term": "ordre de la file",
    "legend_queue": (
        "d'abord les segments où votre décision pèse le plus : une confiance proche de son seuil, un impact rare, "
        "deux impacts proches. Les impacts vont du plus probable au moins probable."
    ),
    "no_match": "Aucun impact ne correspond. Essayez un autre mot, en français ou en anglais.",
    "session_title": "Votre session",
    "session_reviewed": "segments décidés",
    "session_changed": "où vous avez modifié les codes du modèle",
    "session_agreement": "mêmes codes que le modèle",
    "session_time": "temps passé",
    "minutes": "{n} min (pauses de plus de 10 minutes exclues)",
    "finished_blind": (
        "Révision à l'aveugle : quand l'autre réviseur·e aura fini aussi, la vue accord listera les désaccords "
        "à résoudre."
    ),
    "export_title": "Exporter le codage final",
    "export_text": (
        "Toute l'analyse : vos décisions, le consensus là où il existe, et les codes du modèle sur le texte que "
        "personne n'a révisé (codeur « imri model … », marqués non révisés, avec leur confiance), les codes "
        "rangés sous leurs catégories. NVivo, ATLAS.ti, MAXQDA et QualCoder ouvrent le fichier .qdpx."
    ),
    "export_blind": (
        "Révision à l'aveugle : l'application ne propose pas le codage final (il contient les codes du modèle et "
        "les décisions de chaque réviseur·e). Quand vous aurez fini et résolu les désaccords, dans un terminal :"
    ),
    "download_qdpx": "Télécharger .qdpx (REFI-QDA)",
    "download_csv": "Télécharger .csv",
    "export_command": "Ou dans un terminal :",
    "retrain_title": "Réentraîner avec vos décisions",
    "retrain_text": "Le modèle a été entraîné sur le corpus de référence ci-dessous; ceci entraîne un nouveau modèle "
    "sur ce corpus et vos décisions :",
    "retrain_note": (
        "La commande écrit un nouveau dossier de modèle, models/<nom>-<version>, et n'écrase jamais un autre modèle "
        "(à lancer dans le dossier du projet)."
    ),
    "retrain_unknown": (
        "L'analyse n'indique pas sur quel corpus de référence son modèle a été entraîné : aucune commande de "
        "réentraînement n'est proposée."
    ),
}

TEXTS = {"en": EN, "fr": FR}

# the reasons imri code gives for queueing a segment (pipeline.coding.review_priority)
REASONS = {
    "uncertain decision": {"en": "uncertain decision", "fr": "décision incertaine"},
    "rare code": {"en": "rare code", "fr": "code rare"},
    "two codes close": {"en": "two codes close", "fr": "deux codes proches"},
}


class Strings:
    """The labels of one language: ``t.key`` and ``t["key"]``; a missing key raises ``KeyError``."""

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts

    def __getattr__(self, key: str) -> str:
        if key.startswith("_"):
            raise AttributeError(key)
        return self._texts[key]

    def __getitem__(self, key: str) -> str:
        return self._texts[key]

    def __contains__(self, key: object) -> bool:
        return key in self._texts

    def get(self, key: str, default: str) -> str:
        return self._texts.get(key, default)


def strings(lang: str) -> Strings:
    """The labels in ``lang`` (``en`` or ``fr``)."""
    return Strings(TEXTS[lang])


def reason_text(reasons: str, lang: str) -> str:
    """``imri code``'s ``;``-joined queueing reasons in ``lang`` (unknown ones as they are)."""
    parts = [part.strip() for part in str(reasons or "").split(";") if part.strip()]
    return "; ".join(REASONS.get(part, {}).get(lang, part) for part in parts)


def format_number(value: float | None, lang: str, digits: int = 2) -> str:
    """A number as a reader of ``lang`` writes it (``0.21`` / ``0,21``); ``—`` when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{float(value):.{digits}f}"
    return text.replace(".", ",") if lang == "fr" else text
