"""Settings and the errors that name them: what every module may import (it imports nothing of
ours).

A setting is declared once (`setting`: default, help, choices or bounds) in a dataclass and
checked by `check_settings`. Errors name settings, never command-line text: `SettingError`'s
message marks each setting it mentions as `{name}`, `str()` shows the plain name, and a program
words it its own way (`worded(err, spell)`: a flag on the command line, a field's label on the
web page).
"""

import dataclasses
import math

# Compute precisions by name, and the Keras mixed-precision policy of each.
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def plain(name):
    """How a setting is named where no program words it: as the library's argument."""
    return f"`{name}`"


def _fill(template, mentions, spell):
    for name in mentions:
        template = template.replace("{" + name + "}", spell(name))
    return template


class SettingError(ValueError):
    """Bad input whose message may mention settings by name.

    Args:
      message: the text; each setting in `mentions` appears in it as `{name}`.
      field: the setting at fault, if one is; the message then starts with it.
      mentions: the settings the message names (besides `field`).
    """

    def __init__(self, message, field=None, mentions=()):
        self.template, self.field, self.mentions = message, field, tuple(mentions)
        self.detail = _fill(message, self.mentions, plain)
        super().__init__(f"{field}: {self.detail}" if field else self.detail)

    def worded(self, spell):
        """The message with `field` and the mentioned settings spelled by `spell(name)`."""
        text = _fill(self.template, self.mentions, spell)
        return f"{spell(self.field)}: {text}" if self.field else text


class ConfigError(SettingError):
    """A log dir, checkpoint or configuration that cannot be used."""


def within(err, prefix, kind):
    """An error of class `kind` saying `prefix: ` and `err`'s message, the settings `err`
    names still marked for a program to word (a plain exception's message as it is)."""
    if not isinstance(err, SettingError):
        return kind(f"{prefix}: {err}")
    named = err.mentions + ((err.field,) if err.field else ())
    template = (f"{{{err.field}}}: " if err.field else "") + err.template
    return kind(f"{prefix}: {template}", mentions=named)


def worded(err, spell):
    """The message of any exception, its settings spelled by `spell` where it names them."""
    if isinstance(err, SettingError):
        return err.worded(spell)
    return str(err)


def _require(condition, field, message):
    if not condition:
        raise ConfigError(message, field=field)


def setting(default, help, *, choices=None, at_least=None, at_most=None):
    """A configuration field, declared once: its default, its help text (the flag's), and the
    values it takes (`choices`, or numbers between `at_least` and `at_most`; floats must be
    finite). `check_settings` enforces them; the programs' flags are generated from them."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": tuple(choices) if choices else None, "at_least": at_least,
        "at_most": at_most})


def check_settings(record):
    """Checks every field of a configuration dataclass against its `setting` metadata."""
    for field in dataclasses.fields(record):
        value, meta = getattr(record, field.name), field.metadata
        if isinstance(value, float):
            _require(math.isfinite(value), field.name, f"must be a finite number, got {value}")
        if meta.get("choices") is not None:
            _require(value in meta["choices"], field.name, "must be one of "
                     f"{', '.join(map(str, meta['choices']))}, got {value!r}")
        if meta.get("at_least") is not None:
            _require(value >= meta["at_least"], field.name,
                     f"must be at least {meta['at_least']:g}, got {value}")
        if meta.get("at_most") is not None:
            _require(value <= meta["at_most"], field.name,
                     f"must be at most {meta['at_most']:g}, got {value}")
