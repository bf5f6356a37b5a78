"""The broker's subscription index: which subscriptions does a PUBLISH go to.

A pure module (standard library and :mod:`retained.topics` only; no asyncio, no
Django) that keeps every live subscription of the broker in a trie keyed by topic
levels, so that routing a PUBLISH costs a walk along the topic's levels instead of
a scan of all subscriptions.

Matching agrees exactly with :func:`retained.topics.topic_matches`, the project's
reference matcher:

* ``+`` matches exactly one level, possibly empty (``"sport/+"`` matches ``"sport/"``);
* ``#`` matches its parent level and any number of levels below it (``"sport/#"``
  matches ``"sport"``, ``"sport/"`` and ``"sport/a/b"``);
* [MQTT-4.7.2-1] a filter whose *first* level is ``+`` or ``#`` never matches a
  topic starting with ``$`` (``"#"`` does not match ``"$SYS/x"``, ``"$SYS/#"`` does);
* every other level compares literally and case-sensitively.

Shared subscriptions (MQTT 5.0 section 4.8.2, ``$share/{group}/{filter}``): the
clients that subscribed with the same ``(group, filter)`` pair are the members of
one shared subscription, and each matching PUBLISH goes to exactly one of them,
chosen round-robin. Two groups with the same filter are two shared subscriptions.

The index is not thread-safe; the broker drives it from its single event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from retained.topics import (
    LEVEL_SEPARATOR,
    MULTI_LEVEL_WILDCARD,
    SINGLE_LEVEL_WILDCARD,
    split_shared_subscription,
)

__all__ = ["Match", "SubscriptionIndex", "SubscriptionOptions"]


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """The options a subscription was granted with (MQTT 5.0 section 3.8.3.1)."""

    qos: int = 0  # granted QoS (0 or 1: AWS IoT Core has no QoS 2)
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(frozen=True, slots=True)
class Match:
    """One delivery a PUBLISH owes: to ``client_id``, for its ``topic_filter`` subscription."""

    client_id: str
    topic_filter: str  # exactly as subscribed, including any "$share/group/" prefix
    options: SubscriptionOptions
    share_group: str | None  # None for an ordinary subscription


class _SharedGroup:
    """The members of one shared subscription ``$share/{group}/{filter}``.

    Members rotate in the order they joined (re-subscribing keeps a member's place);
    ``cursor`` is the position of the member whose turn is next.
    """

    __slots__ = ("cursor", "members", "ring")

    def __init__(self) -> None:
        self.members: dict[str, Match] = {}  # client id -> its Match, in joining order
        self.ring: tuple[Match, ...] | None = None  # members.values(), cached for match()
        self.cursor = 0

    def put(self, match: Match) -> None:
        self.members[match.client_id] = match  # an existing member keeps its place
        self.ring = None

    def discard(self, client_id: str) -> None:
        position = list(self.members).index(client_id)
        del self.members[client_id]
        self.ring = None
        # Keep the turn on the member it was on: members after the removed one move
        # back by one place.
        if position < self.cursor:
            self.cursor -= 1
        if self.cursor >= len(self.members):
            self.cursor = 0

    def pick(self, is_member_available: Callable[[str], bool] | None) -> Match:
        """The member whose turn it is (skipping unavailable ones), and advance the turn."""
        ring = self.ring
        if ring is None:
            ring = self.ring = tuple(self.members.values())
        size = len(ring)
        chosen = self.cursor
        if is_member_available is not None:
            for step in range(size):
                candidate = (self.cursor + step) % size
                if is_member_available(ring[candidate].client_id):
                    chosen = candidate
                    break
            # If no member is available, fall back to the one whose turn it is.
        self.cursor = (chosen + 1) % size
        return ring[chosen]


class _Node:
    """A trie node: one topic-filter level, reached from the root by the levels before it.

    The ``+`` and ``#`` children are kept apart from the literal ones, so a level of
    a topic is only ever looked up in ``children``.
    """

    __slots__ = ("children", "hash", "plus", "shared", "subs")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}  # literal level -> child
        self.plus: _Node | None = None  # the '+' child
        self.hash: _Node | None = None  # the '#' child (a leaf)
        # Subscriptions whose (inner) filter ends at this node:
        self.subs: dict[str, Match] | None = None  # ordinary: client id -> Match
        self.shared: dict[str, _SharedGroup] | None = None  # share group -> members

    def is_empty(self) -> bool:
        return not (self.children or self.plus or self.hash or self.subs or self.shared)

    def child(self, level: str) -> _Node | None:
        if level == SINGLE_LEVEL_WILDCARD:
            return self.plus
        if level == MULTI_LEVEL_WILDCARD:
            return self.hash
        return self.children.get(level)

    def child_or_new(self, level: str) -> _Node:
        node = self.child(level)
        if node is None:
            node = _Node()
            if level == SINGLE_LEVEL_WILDCARD:
                self.plus = node
            elif level == MULTI_LEVEL_WILDCARD:
                self.hash = node
            else:
                self.children[level] = node
        return node

    def drop_child(self, level: str) -> None:
        if level == SINGLE_LEVEL_WILDCARD:
            self.plus = None
        elif level == MULTI_LEVEL_WILDCARD:
            self.hash = None
        else:
            del self.children[level]


class SubscriptionIndex:
    """Every subscription of the broker, indexed by topic-filter levels.

    A subscription is identified by ``(client_id, topic_filter)`` where
    ``topic_filter`` is the string the client subscribed with (shared ones
    included, as ``"$share/{group}/{filter}"``). Filters are assumed valid
    (:func:`retained.topics.validate_topic_filter`), topics too
    (:func:`retained.topics.validate_topic_name`).
    """

    __slots__ = ("_by_client", "_root", "_total", "version")

    def __init__(self) -> None:
        self._root = _Node()
        self._by_client: dict[str, dict[str, SubscriptionOptions]] = {}
        self._total = 0
        # Moves on every change, so that a caller may keep what `match` returned for a
        # topic while it stays the same (shared subscriptions aside: they rotate).
        self.version = 0

    # ------------------------------------------------------------------ updates

    def add(self, client_id: str, topic_filter: str, options: SubscriptionOptions) -> bool:
        """Subscribe ``client_id`` to ``topic_filter``.

        Returns True when the subscription is new, False when the client already had
        one with this exact filter: its options are then replaced, in place
        ([MQTT-3.8.4-3]), keeping its place in match order and share rotation.
        """
        self.version += 1
        group, inner = split_shared_subscription(topic_filter)
        node = self._root
        for level in inner.split(LEVEL_SEPARATOR):
            node = node.child_or_new(level)
        match = Match(client_id, topic_filter, options, group)
        if group is None:
            if node.subs is None:
                node.subs = {}
            node.subs[client_id] = match
        else:
            if node.shared is None:
                node.shared = {}
            members = node.shared.get(group)
            if members is None:
                members = node.shared[group] = _SharedGroup()
            members.put(match)
        filters = self._by_client.get(client_id)
        if filters is None:
            filters = self._by_client[client_id] = {}
        is_new = topic_filter not in filters
        filters[topic_filter] = options
        if is_new:
            self._total += 1
        return is_new

    def remove(self, client_id: str, topic_filter: str) -> bool:
        """Unsubscribe ``client_id`` from ``topic_filter``; True if it was subscribed.

        Trie nodes left without subscriptions or children are pruned.
        """
        filters = self._by_client.get(client_id)
        if filters is None or topic_filter not in filters:
            return False
        del filters[topic_filter]
        if not filters:
            del self._by_client[client_id]
        self._total -= 1
        self.version += 1

        group, inner = split_shared_subscription(topic_filter)
        path: list[tuple[_Node, str]] = []  # (parent, level) down to the filter's node
        node = self._root
        for level in inner.split(LEVEL_SEPARATOR):
            child = node.child(level)
            assert child is not None, "the per-client map and the trie disagree"
            path.append((node, level))
            node = child
        if group is None:
            assert node.subs is not None
            del node.subs[client_id]
            if not node.subs:
                node.subs = None
        else:
            assert node.shared is not None
            members = node.shared[group]
            members.discard(client_id)
            if not members.members:
                del node.shared[group]
                if not node.shared:
                    node.shared = None
        for parent, level in reversed(path):
            if not node.is_empty():
                break
            parent.drop_child(level)
            node = parent
        return True

    def remove_client(self, client_id: str) -> int:
        """Remove every subscription of ``client_id``; returns how many there were."""
        filters = list(self._by_client.get(client_id, ()))
        for topic_filter in filters:
            self.remove(client_id, topic_filter)
        return len(filters)

    # ------------------------------------------------------------------ queries

    def subscriptions_of(self, client_id: str) -> dict[str, SubscriptionOptions]:
        """A copy of ``client_id``'s subscriptions: filter (as subscribed) -> options."""
        return dict(self._by_client.get(client_id, ()))

    def count(self, client_id: str) -> int:
        """How many subscriptions ``client_id`` has."""
        filters = self._by_client.get(client_id)
        return 0 if filters is None else len(filters)

    def __len__(self) -> int:
        """The total number of subscriptions, all clients together."""
        return self._total

    def node_count(self) -> int:
        """The number of trie nodes, root included (1 when the index is empty)."""
        count = 0
        stack = [self._root]
        while stack:
            node = stack.pop()
            count += 1
            stack.extend(node.children.values())
            if node.plus is not None:
                stack.append(node.plus)
            if node.hash is not None:
                stack.append(node.hash)
        return count

    def match(
        self, topic: str, *, is_member_available: Callable[[str], bool] | None = None
    ) -> list[Match]:
        """The deliveries a PUBLISH to ``topic`` owes, one :class:`Match` each.

        * every ordinary subscription whose filter matches gives one Match, so a
          client with several overlapping matching filters gets several;
        * every matching shared subscription ``(group, filter)`` gives exactly one
          Match, for the member whose turn it is (round-robin across calls, in the
          order members joined). With ``is_member_available``, members for which it
          returns False are skipped, unless none is available: then the member
          whose turn it is gets it anyway.

        Order (deterministic): filters in the order of a breadth-first walk of the
        trie along the topic's levels -- a ``#`` filter as soon as its parent level
        is reached (so shorter ``#`` filters first), and at each level the literal
        child before the ``+`` one; for one filter, its ordinary subscriptions in
        subscription order, then one Match per share group in group creation order.
        """
        levels = topic.split(LEVEL_SEPARATOR)
        root = self._root
        found: list[_Node] = []  # nodes whose filter matches the topic
        nodes: list[_Node] = []  # nodes whose filter prefix matched the levels so far
        child = root.children.get(levels[0])
        if child is not None:
            nodes.append(child)
        # [MQTT-4.7.2-1] '+' and '#' as first level never match a topic starting with '$'.
        if not topic.startswith("$"):
            if root.plus is not None:
                nodes.append(root.plus)
            if root.hash is not None:
                found.append(root.hash)
        for index in range(1, len(levels)):
            if not nodes:
                break
            level = levels[index]
            deeper: list[_Node] = []
            for node in nodes:
                if node.hash is not None:
                    found.append(node.hash)  # "x/#" matches "x/anything/..."
                child = node.children.get(level)
                if child is not None:
                    deeper.append(child)
                if node.plus is not None:
                    deeper.append(node.plus)
            nodes = deeper
        for node in nodes:  # every topic level consumed
            found.append(node)
            if node.hash is not None:
                found.append(node.hash)  # "x/#" matches "x" itself

        result: list[Match] = []
        for node in found:
            subs = node.subs
            if subs:
                result.extend(subs.values())
            shared = node.shared
            if shared:
                for members in shared.values():
                    result.append(members.pick(is_member_available))
        return result
