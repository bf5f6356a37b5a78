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

  // filter -> {element, log, count, display, qos, acknowledged, paused, buffer}
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
              display: display, qos: qos, acknowledged: false, paused: false, buffer: [] };
      element.querySelector(".tc-filter").textContent = filter;
      const select = element.querySelector(".tc-display");
      select.value = display;
      select.addEventListener("change", function () {
        sub.display = select.value;
        for (const item of sub.log.children) renderPayload(item, sub.display);
      });
      element.querySelector(".tc-clear").addEventListener("click", function () { clearLog(sub); });
      element.querySelector(".tc-pause").addEventListener("click", function () {
        setPaused(sub, !sub.paused);
      });
      element.querySelector(".tc-export").addEventListener("click", function () {
        exportJson(filter, sub);
      });
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
    sub.buffer.length = 0;
    sub.count = 0;
    updateCount(sub);
    updatePaused(sub);
  }

  // While paused, messages wait in sub.buffer (counted, not rendered) and are shown on resume.
  function setPaused(sub, paused) {
    sub.paused = paused;
    const button = sub.element.querySelector(".tc-pause");
    button.textContent = paused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", paused ? "true" : "false");
    if (!paused) {
      const waiting = sub.buffer.splice(0, sub.buffer.length);
      for (const message of waiting) show(sub, message);
      trimShown();
    }
    updatePaused(sub);
  }

  function updatePaused(sub) {
    sub.element.querySelector(".tc-paused").hidden = !sub.paused;
    sub.element.querySelector(".tc-paused-count").textContent = String(sub.buffer.length);
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
      sub.count += 1;
      if (sub.paused) {
        sub.buffer.push(message);
        if (sub.buffer.length > maxMessages) {
          sub.buffer.shift();
          sub.count -= 1;
          droppedOnPage += 1;
        }
        updatePaused(sub);
      } else {
        show(sub, message);
      }
      updateCount(sub);
    }
    trimShown();
  }

  // Render one message into its subscription's log (already counted in sub.count).
  function show(sub, message) {
    const item = renderMessage(message);
    renderPayload(item, sub.display);
    item.subscription = sub;
    sub.log.prepend(item); // newest first
    shown.push(item);
  }

  function trimShown() {
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
    if (message.payload_format_indicator != null) {
      rows.push(["Payload format", message.payload_format_indicator === 1 ? "UTF-8 (1)" : "unspecified (0)"]);
    }
    if (message.response_topic != null) rows.push(["Response topic", message.response_topic]);
    if (message.correlation_data != null) {
      rows.push(["Correlation data", message.correlation_data]);
    } else if (message.correlation_data_b64 != null) {
      rows.push(["Correlation data (hex)", hex(decodeBase64(message.correlation_data_b64))]);
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
    item.message = message;
    return item;
  }

  // --- export ------------------------------------------------------------------------------
  function exportRecord(message) {
    const record = {
      topic: message.topic,
      time: new Date(message.received_at).toISOString(),
      qos: message.qos,
      retain: message.retain,
    };
    if (message.payload != null) record.payload = message.payload;
    else record.payload_base64 = message.payload_b64;
    const properties = {};
    if (message.content_type) properties.content_type = message.content_type;
    if (message.payload_format_indicator != null) {
      properties.payload_format_indicator = message.payload_format_indicator;
    }
    if (message.message_expiry_interval != null) {
      properties.message_expiry_interval = message.message_expiry_interval;
    }
    if (message.response_topic != null) properties.response_topic = message.response_topic;
    if (message.correlation_data != null) properties.correlation_data = message.correlation_data;
    else if (message.correlation_data_b64 != null) {
      properties.correlation_data_base64 = message.correlation_data_b64;
    }
    if (message.user_properties && message.user_properties.length) {
      properties.user_properties = message.user_properties;
    }
    record.properties = properties;
    return record;
  }

  function exportJson(filter, sub) {
    // Oldest first: the log shows the newest first; waiting (paused) messages are newer.
    const kept = Array.from(sub.log.children).reverse().map(function (item) { return item.message; });
    const all = kept.concat(sub.buffer);
    const data = {
      subscription: filter,
      exported_at: new Date().toISOString(),
      messages: all.map(exportRecord),
    };
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = "mqtt-" + (filter.replace(/[^A-Za-z0-9._-]+/g, "_") || "messages") + ".json";
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
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
    const responseTopic = form.elements.response_topic.value;
    if (responseTopic.includes("+") || responseTopic.includes("#")) {
      notice("error", "Response topic " + responseTopic +
        " contains a wildcard: + and # are for subscriptions; a response topic is one topic name.");
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
      payload_format_indicator: form.elements.payload_format_indicator.value,
      response_topic: form.elements.response_topic.value,
      correlation_data: form.elements.correlation_data.value,
    });
  });

  open();
})();
