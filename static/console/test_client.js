// The MQTT test client page: one WebSocket to /ws/test-client/ (the server holds the MQTT
// connection as the signed-in user). Payloads and topics are untrusted: every value is put
// into the DOM with textContent, never innerHTML.
(function () {
  "use strict";

  const root = document.getElementById("test-client");
  if (!root) return;

  const maxMessages = Number(root.dataset.maxMessages || "1000");
  const badge = document.getElementById("connection-badge");
  const clientIdBox = document.getElementById("client-id");
  const detailBox = document.getElementById("connection-detail");
  const notices = document.getElementById("tc-notices");
  const list = document.getElementById("subscriptions");
  const noSubscriptions = document.getElementById("no-subscriptions");
  const droppedLine = document.getElementById("dropped-line");
  const droppedCount = document.getElementById("dropped-count");
  const subscriptionTemplate = document.getElementById("subscription-template");
  const messageTemplate = document.getElementById("message-template");

  // filter -> {element, log, count, display, qos, acknowledged}
  const subscriptions = new Map();
  const shown = []; // every rendered message element, oldest first (the page-wide cap)
  let droppedOnPage = 0;
  let droppedByServer = 0;
  let socket = null;
  let retryDelay = 1000;

  // --- connection --------------------------------------------------------------------------
  function setState(state, clientId, detail) {
    badge.textContent = state;
    badge.className = "tc-badge tc-state-" + state;
    if (clientId) clientIdBox.textContent = clientId;
    detailBox.textContent = detail || "";
  }

  function open() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + root.dataset.wsPath);
    socket.addEventListener("open", function () { retryDelay = 1000; });
    socket.addEventListener("message", function (event) {
      let message;
      try { message = JSON.parse(event.data); } catch (error) { return; }
      handle(message);
    });
    socket.addEventListener("close", function () {
      socket = null;
      setState("reconnecting", null, "the page lost its connection; retrying");
      for (const sub of subscriptions.values()) sub.acknowledged = false;
      setTimeout(open, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    });
  }

  function send(request) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      notice("error", "Not connected: the request was not sent.");
      return false;
    }
    socket.send(JSON.stringify(request));
    return true;
  }

  function handle(message) {
    switch (message.type) {
      case "state":
        setState(message.state, message.client_id, message.detail);
        if (message.state === "connected") resubscribe();
        break;
      case "subscribed": subscribed(message); break;
      case "unsubscribed": removeSubscription(message.topic_filter); break;
      case "refused": refused(message); break;
      case "published":
        notice("ok", "Published to " + message.topic + (message.reason ? " — " + message.reason : ""));
        break;
      case "message": received(message); break;
      case "dropped":
        droppedByServer = message.count;
        showDropped();
        break;
    }
  }

  // --- notices -----------------------------------------------------------------------------
  function notice(kind, text) {
    const item = document.createElement("li");
    item.className = "tc-notice tc-notice-" + kind;
    item.textContent = text;
    notices.prepend(item);
    while (notices.children.length > 5) notices.lastElementChild.remove();
  }

  function refused(message) {
    if (message.action === "subscribe") {
      const sub = subscriptions.get(message.topic_filter);
      if (sub && !sub.acknowledged) removeSubscription(message.topic_filter);
      notice("error", "Subscription to " + message.topic_filter + " refused: " + message.reason);
    } else if (message.action === "publish") {
      notice("error", "Publish" + (message.topic ? " to " + message.topic : "") + " refused: " + message.reason);
    } else {
      notice("error", message.reason);
    }
  }

  // --- subscriptions -----------------------------------------------------------------------
  function addSubscription(filter, qos, display) {
    let sub = subscriptions.get(filter);
    if (!sub) {
      const element = subscriptionTemplate.content.firstElementChild.cloneNode(true);
      sub = { element: element, log: element.querySelector(".tc-log"), count: 0,
              display: display, qos: qos, acknowledged: false };
      element.querySelector(".tc-filter").textContent = filter;
      const select = element.querySelector(".tc-display");
      select.value = display;
      select.addEventListener("change", function () {
        sub.display = select.value;
        for (const item of sub.log.children) renderPayload(item, sub.display);
      });
      element.querySelector(".tc-clear").addEventListener("click", function () { clearLog(sub); });
      element.querySelector(".tc-unsubscribe").addEventListener("click", function () {
        send({ action: "unsubscribe", topic_filter: filter });
      });
      subscriptions.set(filter, sub);
      list.prepend(element);
    }
    sub.qos = qos;
    sub.element.querySelector(".tc-sub-qos").textContent = "QoS " + qos;
    sub.element.querySelector(".tc-sub-status").textContent = "subscribing…";
    updateCount(sub);
    noSubscriptions.hidden = subscriptions.size > 0;
  }

  function subscribed(message) {
    let sub = subscriptions.get(message.topic_filter);
    if (!sub) {
      addSubscription(message.topic_filter, message.qos, "auto");
      sub = subscriptions.get(message.topic_filter);
    }
    sub.acknowledged = true;
    sub.element.querySelector(".tc-sub-qos").textContent = "QoS " + message.qos;
    sub.element.querySelector(".tc-sub-status").textContent = "";
  }

  function resubscribe() {
    for (const [filter, sub] of subscriptions) {
      if (!sub.acknowledged) send({ action: "subscribe", topic_filter: filter, qos: sub.qos });
    }
  }

  function removeSubscription(filter) {
    const sub = subscriptions.get(filter);
    if (!sub) return;
    clearLog(sub);
    sub.element.remove();
    subscriptions.delete(filter);
    noSubscriptions.hidden = subscriptions.size > 0;
  }

  function clearLog(sub) {
    for (const item of Array.from(sub.log.children)) forget(item);
    sub.count = 0;
    updateCount(sub);
  }

  function updateCount(sub) {
    sub.element.querySelector(".tc-count").textContent =
      sub.count + (sub.count === 1 ? " message" : " messages");
  }

  // --- messages ----------------------------------------------------------------------------
  function received(message) {
    for (const filter of message.subscriptions || []) {
      const sub = subscriptions.get(filter);
      if (!sub) continue;
      const item = renderMessage(message);
      renderPayload(item, sub.display);
      item.subscription = sub;
      sub.log.prepend(item); // newest first
      sub.count += 1;
      updateCount(sub);
      shown.push(item);
    }
    while (shown.length > maxMessages) {
      const oldest = shown[0];
      forget(oldest);
      droppedOnPage += 1;
    }
    showDropped();
  }

  function forget(item) {
    const index = shown.indexOf(item);
    if (index >= 0) shown.splice(index, 1);
    if (item.subscription && item.isConnected) {
      item.subscription.count -= 1;
      updateCount(item.subscription);
    }
    item.remove();
  }

  function showDropped() {
    const total = droppedOnPage + droppedByServer;
    droppedCount.textContent = String(total);
    droppedLine.hidden = total === 0;
  }

  function renderMessage(message) {
    const item = messageTemplate.content.firstElementChild.cloneNode(true);
    item.querySelector(".tc-topic").textContent = message.topic;
    item.querySelector(".tc-qos").textContent = "QoS " + message.qos;
    item.querySelector(".tc-retained").hidden = !message.retain;
    if (message.retain) item.classList.add("tc-message-retained");
    const time = item.querySelector(".tc-time");
    const when = new Date(message.received_at);
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString();
    const props = item.querySelector(".tc-props");
    const rows = [];
    if (message.content_type) rows.push(["Content type", message.content_type]);
    if (message.message_expiry_interval != null) {
      rows.push(["Message expiry", message.message_expiry_interval + " s"]);
    }
    for (const pair of message.user_properties || []) rows.push([pair[0], pair[1]]);
    for (const row of rows) {
      const term = document.createElement("dt");
      term.textContent = row[0];
      const value = document.createElement("dd");
      value.textContent = row[1];
      props.append(term, value);
    }
    props.hidden = rows.length === 0;
    item.payloadBytes = decodeBase64(message.payload_b64);
    item.payloadText = message.payload; // null when the payload is not UTF-8
    return item;
  }

  function decodeBase64(text) {
    const binary = atob(text || "");
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function hex(bytes) {
    const parts = [];
    for (const byte of bytes) parts.push(byte.toString(16).padStart(2, "0"));
    return parts.join(" ");
  }

  function renderPayload(item, display) {
    const box = item.querySelector(".tc-payload");
    const text = item.payloadText;
    let shownAs = display;
    let value;
    if (display === "hex" || (text == null && display === "auto")) {
      value = hex(item.payloadBytes);
      shownAs = "hex";
    } else if (display === "raw") {
      value = text != null ? text : new TextDecoder("utf-8").decode(item.payloadBytes);
    } else {
      try {
        value = JSON.stringify(JSON.parse(text), null, 2);
        shownAs = "json";
      } catch (error) {
        value = text;
        shownAs = "raw";
      }
    }
    box.textContent = value === "" ? "(empty payload)" : value;
    box.dataset.shownAs = shownAs;
  }

  // --- forms -------------------------------------------------------------------------------
  document.getElementById("subscribe-form").addEventListener("submit", function (event) {
    event.preventDefault();
    const form = event.target;
    const filter = form.elements.topic_filter.value;
    const qos = Number(form.elements.qos.value);
    if (!filter) return;
    addSubscription(filter, qos, form.elements.display.value);
    send({ action: "subscribe", topic_filter: filter, qos: qos });
  });

  document.getElementById("publish-form").addEventListener("submit", function (event) {
    event.preventDefault();
    const form = event.target;
    const topic = form.elements.topic.value;
    if (topic.includes("+") || topic.includes("#")) {
      notice("error", "Cannot publish to " + topic +
        ": + and # are wildcards for subscriptions; a message is published to one topic name.");
      return;
    }
    send({
      action: "publish",
      topic: topic,
      payload: form.elements.payload.value,
      qos: Number(form.elements.qos.value),
      retain: form.elements.retain.checked,
      content_type: form.elements.content_type.value,
      user_properties: form.elements.user_properties.value,
      message_expiry_interval: form.elements.message_expiry_interval.value,
    });
  });

  open();
})();
