// Renders one Qiscus comment as DOM. Text is always set through textContent: chat text is
// never parsed as HTML, so a message cannot inject markup into the page.

const URL_RE = /(https?:\/\/[^\s<>"']+)/g;

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Text with clickable http(s) links; line breaks are kept by CSS (white-space: pre-wrap).
export function linkify(text) {
  const frag = document.createDocumentFragment();
  const parts = String(text ?? "").split(URL_RE);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const a = el("a", "", part);
      a.href = part;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      frag.append(a);
    } else if (part) {
      frag.append(document.createTextNode(part));
    }
  });
  return frag;
}

function textBlock(text) {
  const p = el("div", "text");
  p.append(linkify(text));
  return p;
}

// Only http(s) URLs become links or images: a bot cannot smuggle javascript: URLs in.
function safeUrl(url) {
  if (!url) return null;
  try {
    const parsed = new URL(String(url), window.location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function renderButtons(buttons, onTap) {
  const row = el("div", "buttons");
  for (const button of buttons || []) {
    if (!button || typeof button !== "object") continue;
    const label = button.label || "Button";
    if (button.type === "link") {
      const href = safeUrl(button.payload?.url);
      const a = el("a", "btn link", label);
      if (href) a.href = href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      row.append(a);
    } else {
      const b = el("button", "btn postback", label);
      b.type = "button";
      b.addEventListener("click", () => onTap(button));
      row.append(b);
    }
  }
  return row;
}

function renderCard(card, onTap) {
  const box = el("div", "card");
  const image = safeUrl(card.image || card.image_url);
  if (image) {
    const img = el("img");
    img.src = image;
    img.alt = card.title || "";
    img.loading = "lazy";
    box.append(img);
  }
  const body = el("div", "card-body");
  if (card.title) body.append(el("div", "card-title", card.title));
  if (card.description) body.append(el("div", "card-description", card.description));
  const href = safeUrl(card.url || card.default_action?.payload?.url);
  if (href) {
    const a = el("a", "card-url", "Open");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    body.append(a);
  }
  box.append(body);
  if (card.buttons?.length) box.append(renderButtons(card.buttons, onTap));
  return box;
}

function renderAccountLinking(payload, onLinked) {
  const box = el("div", "account-linking");
  if (payload.text) box.append(textBlock(payload.text));
  const params = payload.params || {};
  const b = el("button", "btn", params.button_text || "Link account");
  b.type = "button";
  b.addEventListener("click", () => {
    const href = safeUrl(payload.url);
    if (href) window.open(href, "_blank", "noopener");
    if (!box.querySelector(".linked")) {
      box.append(el("div", "linked", params.success_message || "Account linked."));
      onLinked?.();
    }
  });
  box.append(b);
  return box;
}

// A WhatsApp template as WhatsApp shows it: bold header, body, muted footer, quick replies
// under the bubble. A tap on a quick reply is the customer's text, the label.
function renderTemplate(content, onTap) {
  const box = el("div", "wa-template");
  box.dataset.template = content.name || "";
  if (content.header) box.append(el("div", "wa-header", content.header));
  box.append(textBlock(content.body || ""));
  if (content.footer) box.append(el("div", "wa-footer", content.footer));
  const row = el("div", "wa-buttons");
  for (const button of content.buttons || []) {
    if (!button || typeof button !== "object") continue;
    const b = el("button", "btn quick-reply", button.label || "");
    b.type = "button";
    b.addEventListener("click", () => onTap({ ...button, type: "quick_reply" }));
    row.append(b);
  }
  if (row.childElementCount) box.append(row);
  return box;
}

function renderReply(comment) {
  const payload = comment.payload || {};
  const frag = document.createDocumentFragment();
  const quote = el("blockquote", "quote");
  quote.append(el("div", "quote-sender", payload.replied_comment_sender_username || ""));
  quote.append(el("div", "quote-text", payload.replied_comment_message || ""));
  frag.append(quote);
  frag.append(textBlock(payload.text ?? comment.message));
  return frag;
}

// The content of one message bubble, by comment type.
export function renderContent(comment, onTap) {
  const payload = comment.payload && typeof comment.payload === "object" ? comment.payload : {};
  const box = el("div", `content type-${comment.type}`);
  switch (comment.type) {
    case "buttons":
      box.append(textBlock(payload.text ?? comment.message));
      box.append(renderButtons(payload.buttons, onTap));
      break;
    case "card":
      if (payload.text) box.append(textBlock(payload.text));
      box.append(renderCard(payload, onTap));
      break;
    case "carousel": {
      // Qiscus clients show only the cards; the message text is the fallback for old clients.
      const strip = el("div", "carousel");
      for (const card of payload.cards || []) strip.append(renderCard(card, onTap));
      box.append(strip);
      break;
    }
    case "account_linking":
      box.append(renderAccountLinking(payload));
      break;
    case "reply":
      box.append(renderReply(comment));
      break;
    case "custom": {
      if (payload.type === "whatsapp_template" && payload.content) {
        box.append(renderTemplate(payload.content, onTap));
        break;
      }
      if (comment.message) box.append(textBlock(comment.message));
      box.append(el("pre", "json", JSON.stringify(comment.payload, null, 2)));
      break;
    }
    case "file_attachment": {
      const href = safeUrl(payload.url);
      const a = el("a", "file", payload.file_name || payload.url || "file");
      if (href) a.href = href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      box.append(a);
      if (payload.caption) box.append(textBlock(payload.caption));
      break;
    }
    default:
      box.append(textBlock(comment.message));
  }
  return box;
}

// A whole list item: a centered line for system events, else a bubble with the sender's name.
export function renderComment(comment, me, onTap) {
  if (comment.type === "system_event") {
    const li = el("li", "system", comment.message);
    li.dataset.id = comment.id;
    return li;
  }
  const mine = comment.email === me;
  const li = el("li", `msg ${mine ? "mine" : "theirs"}`);
  li.dataset.id = comment.id;
  li.dataset.type = comment.type;
  if (!mine) li.append(el("div", "sender", comment.username || comment.email));
  li.append(renderContent(comment, onTap));
  const time = el("time", "time", new Date(comment.unix_timestamp * 1000).toLocaleTimeString());
  li.append(time);
  return li;
}
