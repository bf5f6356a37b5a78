"""MQTT topic names and topic filters: validation and matching.

This is the single topic matcher of the project: the broker's routing, the policy
checks, the HTTP API and the console search all go through it, so its behaviour is
the reference one. It is a pure module (standard library only, no Django).

It follows MQTT 3.1.1 / 5.0 section 4.7 ("Topic Names and Topic Filters") plus the
limits of AWS IoT Core. Spec ids in comments are MQTT 3.1.1 ones, except the
shared-subscription ones ([MQTT-4.8.2-*]) which are MQTT 5.0:

* a topic name is what a message is published to; it must not contain wildcards;
* a topic filter is what a client subscribes with; it may contain the wildcards
  ``+`` (exactly one level) and ``#`` (the parent level and any number of levels
  below it, only as the last level), and may be a shared subscription
  ``$share/{name}/{filter}``;
* AWS IoT Core limits both to 256 bytes of UTF-8 and at most 7 ``/`` and reserves
  the ``$aws/`` topics (no retained publishes there).

Matching splits both strings on ``/`` and compares level by level; no regular
expressions are involved, so no character other than ``/``, ``+`` and ``#`` (and a
leading ``$``) has any special meaning: ``.``, ``*``, ``?`` and so on are literal.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_LIMITS",
    "LEVEL_SEPARATOR",
    "MULTI_LEVEL_WILDCARD",
    "RESERVED_RETAIN_PREFIX",
    "SHARED_PREFIX",
    "SINGLE_LEVEL_WILDCARD",
    "InvalidTopicError",
    "TopicLimits",
    "is_wildcard_filter",
    "split_shared_subscription",
    "topic_matches",
    "validate_topic_filter",
    "validate_topic_name",
]

LEVEL_SEPARATOR = "/"  # MQTT section 4.7.1.1: the topic level separator
SINGLE_LEVEL_WILDCARD = "+"
MULTI_LEVEL_WILDCARD = "#"
SHARED_PREFIX = "$share/"  # MQTT 5.0 section 4.8.2: "$share/{ShareName}/{filter}"
RESERVED_RETAIN_PREFIX = "$aws/"  # AWS: reserved topics, retained publishes refused
_NUL = "\u0000"


class InvalidTopicError(ValueError):
    """A topic name or topic filter breaks an MQTT or AWS IoT Core rule.

    ``str(error)`` is a human-readable message naming the problem, e.g.
    ``"topic is longer than 256 bytes (300)"``.
    """


@dataclass(frozen=True)
class TopicLimits:
    """Size limits applied on top of the MQTT syntax rules."""

    max_bytes: int = 256  # AWS: a topic (or filter) is at most 256 bytes of UTF-8
    max_slashes: int = 7  # AWS: at most 7 '/' (filters: not counting "$share/name/")


DEFAULT_LIMITS = TopicLimits()


def _shorten(text: str, limit: int = 40) -> str:
    """``repr`` of ``text`` cut to about ``limit`` characters, for error messages."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _check_text(value: str, what: str) -> None:
    """Rules shared by names and filters: a non-empty, well-formed UTF-8 string without NUL."""
    if not isinstance(value, str):
        raise InvalidTopicError(f"{what} must be a string, not {type(value).__name__}")
    # [MQTT-4.7.3-1] topic names and topic filters must be at least one character long.
    if not value:
        raise InvalidTopicError(f"{what} is empty")
    # [MQTT-1.5.3-1] must be well-formed UTF-8: no surrogate code points U+D800..U+DFFF.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidTopicError(
            f"{what} is not valid UTF-8 (lone surrogate U+{ord(value[exc.start]):04X} "
            f"at index {exc.start})"
        ) from None
    # [MQTT-1.5.3-2] [MQTT-4.7.3-2] must not contain the null character U+0000.
    if _NUL in value:
        raise InvalidTopicError(
            f"{what} contains the null character U+0000 at index {value.index(_NUL)}"
        )


def _check_size(value: str, what: str, limits: TopicLimits) -> None:
    """AWS size limits; ``value`` has already passed :func:`_check_text`."""
    # AWS: at most 256 bytes once encoded as UTF-8 (MQTT itself allows 65535,
    # [MQTT-4.7.3-3]).
    size = len(value.encode("utf-8"))
    if size > limits.max_bytes:
        raise InvalidTopicError(f"{what} is longer than {limits.max_bytes} bytes ({size})")
    # AWS: at most 7 forward slashes.
    slashes = value.count(LEVEL_SEPARATOR)
    if slashes > limits.max_slashes:
        raise InvalidTopicError(f"{what} has more than {limits.max_slashes} '/' ({slashes})")


def validate_topic_name(
    topic: str, *, limits: TopicLimits = DEFAULT_LIMITS, for_retain: bool = False
) -> None:
    """Raise :class:`InvalidTopicError` unless ``topic`` is a valid topic name.

    A topic name is what a message is published to. ``"$SYS/x"``, ``"$foo"``,
    ``"a b"``, ``"/"``, ``"a//b"`` and ``"a/"`` are all valid names. With
    ``for_retain=True`` the AWS-reserved ``$aws/`` topics are refused too.
    """
    _check_text(topic, "topic")
    # [MQTT-4.7.1-1] [MQTT-3.3.2-2] wildcard characters must not be used in topic names.
    for wildcard in (SINGLE_LEVEL_WILDCARD, MULTI_LEVEL_WILDCARD):
        if wildcard in topic:
            raise InvalidTopicError(
                f"topic name contains the wildcard character {wildcard!r} at index "
                f"{topic.index(wildcard)}; wildcards are only allowed in topic filters"
            )
    _check_size(topic, "topic", limits)
    # AWS: topics beginning with "$aws/" are reserved; retained messages cannot be
    # published to them.
    if for_retain and topic.startswith(RESERVED_RETAIN_PREFIX):
        raise InvalidTopicError(
            f"topic starts with the reserved prefix {RESERVED_RETAIN_PREFIX!r}; "
            "retained messages cannot be published to reserved topics"
        )


def _check_filter_levels(topic_filter: str, what: str) -> None:
    """Wildcard placement rules for a filter without any ``$share/name/`` prefix."""
    levels = topic_filter.split(LEVEL_SEPARATOR)
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if MULTI_LEVEL_WILDCARD in level:
            # [MQTT-4.7.1-2] '#' must be on its own (the whole level) and the last
            # character of the filter, i.e. the whole last level.
            if level != MULTI_LEVEL_WILDCARD:
                raise InvalidTopicError(
                    f"{what} level {_shorten(level)} mixes '#' with other characters; "
                    "'#' must be a whole level"
                )
            if index != last:
                raise InvalidTopicError(
                    f"{what} has '#' before its last level; '#' must be the last level"
                )
        elif SINGLE_LEVEL_WILDCARD in level and level != SINGLE_LEVEL_WILDCARD:
            # [MQTT-4.7.1-3] '+' must occupy an entire level of the filter.
            raise InvalidTopicError(
                f"{what} level {_shorten(level)} mixes '+' with other characters; "
                "'+' must be a whole level"
            )


def validate_topic_filter(topic_filter: str, *, limits: TopicLimits = DEFAULT_LIMITS) -> None:
    """Raise :class:`InvalidTopicError` unless ``topic_filter`` is a valid topic filter.

    Accepts shared subscriptions ``$share/{name}/{filter}``; the byte and slash
    limits then apply to ``{filter}`` alone.
    """
    _check_text(topic_filter, "topic filter")
    if not topic_filter.startswith(SHARED_PREFIX):
        _check_filter_levels(topic_filter, "topic filter")
        _check_size(topic_filter, "topic filter", limits)
        return
    # Shared subscriptions (MQTT 5.0 section 4.8.2): "$share/{ShareName}/{filter}".
    share_name, separator, inner = topic_filter[len(SHARED_PREFIX) :].partition(LEVEL_SEPARATOR)
    # [MQTT-4.8.2-1] the ShareName must be at least one character long.
    if not share_name:
        raise InvalidTopicError("shared subscription has an empty share name")
    # [MQTT-4.8.2-2] the ShareName must not contain '/', '+' or '#' ('/' ends it).
    for wildcard in (SINGLE_LEVEL_WILDCARD, MULTI_LEVEL_WILDCARD):
        if wildcard in share_name:
            raise InvalidTopicError(
                f"shared subscription share name {_shorten(share_name)} contains {wildcard!r}"
            )
    # [MQTT-4.8.2-2] the ShareName must be followed by '/' and then a topic filter.
    if not separator or not inner:
        raise InvalidTopicError(
            f"shared subscription {_shorten(topic_filter)} has no topic filter after the share name"
        )
    what = "shared subscription topic filter"
    _check_filter_levels(inner, what)
    # AWS: the limits apply to the filter without the "$share/{ShareName}/" prefix.
    _check_size(inner, what, limits)


def split_shared_subscription(topic_filter: str) -> tuple[str | None, str]:
    """Split ``"$share/g/a/b"`` into ``("g", "a/b")``; ``"a/b"`` gives ``(None, "a/b")``.

    Assumes ``topic_filter`` is valid (see :func:`validate_topic_filter`).
    """
    if topic_filter.startswith(SHARED_PREFIX):
        share_name, _, inner = topic_filter[len(SHARED_PREFIX) :].partition(LEVEL_SEPARATOR)
        return share_name, inner
    return None, topic_filter


def is_wildcard_filter(topic_filter: str) -> bool:
    """True if the filter (without any ``$share/name/`` prefix) has a ``+`` or ``#`` level."""
    _, inner = split_shared_subscription(topic_filter)
    return any(
        level in (SINGLE_LEVEL_WILDCARD, MULTI_LEVEL_WILDCARD)
        for level in inner.split(LEVEL_SEPARATOR)
    )


def topic_matches(topic_filter: str, topic: str) -> bool:
    """True if the topic name ``topic`` matches the topic filter ``topic_filter``.

    Both are assumed valid, and the filter non-shared: for ``$share/name/filter``
    pass the ``filter`` part from :func:`split_shared_subscription` (a ``$share/...``
    string passed here is compared literally, like any other filter).

    * ``+`` matches exactly one level, possibly empty;
    * ``#`` matches the parent level and any number of levels below it;
    * a filter starting with ``+`` or ``#`` never matches a topic starting with ``$``;
    * every other level is compared literally and case-sensitively.
    """
    filter_levels = topic_filter.split(LEVEL_SEPARATOR)
    topic_levels = topic.split(LEVEL_SEPARATOR)
    # [MQTT-4.7.2-1] a filter starting with a wildcard must not match a topic name
    # starting with '$' ("$SYS/#" does, "#" and "+/x" do not).
    if topic.startswith("$") and filter_levels[0] in (
        SINGLE_LEVEL_WILDCARD,
        MULTI_LEVEL_WILDCARD,
    ):
        return False
    for index, filter_level in enumerate(filter_levels):
        if filter_level == MULTI_LEVEL_WILDCARD:
            # [MQTT-4.7.1-2] '#' matches the parent and any number of child levels:
            # "sport/#" matches "sport", "sport/" and "sport/a/b". Reaching here
            # means every earlier filter level matched a topic level, so
            # index <= len(topic_levels).
            return True
        if index >= len(topic_levels):
            return False  # the filter has more levels than the topic
        if filter_level == SINGLE_LEVEL_WILDCARD:
            continue  # [MQTT-4.7.1-3] '+' matches exactly one level, even an empty one
        # [MQTT-4.7.3-4] no normalisation or folding: levels compare exactly.
        if filter_level != topic_levels[index]:
            return False
    # Without '#', the filter must account for every level of the topic.
    return len(filter_levels) == len(topic_levels)
