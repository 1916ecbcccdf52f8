// The agentsession explorer page: a sessions list and a session's timeline, drawn from the
// JSON API next to this file. Plain DOM APIs only (no framework, no build step, no network
// beyond this server); every recorded value is put on the page as text, never as HTML.
"use strict";

(function () {
  const PAGE_SIZE = 50;
  const LIST_POLL_MS = 5000;
  const SESSION_POLL_MS = 3000;
  const STATUSES = ["in_progress", "completed", "failed", "cancelled", "timed_out"];

  const app = document.getElementById("app");
  const live = document.getElementById("live");
  const problem = document.getElementById("problem");

  // -- small helpers ----------------------------------------------------------------------------

  // h("div", {className: "x", onclick: f}, child, "text", ...): an element, built safely.
  function h(tag, props, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "dataset") Object.assign(element.dataset, value);
      else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else if (name in element && name !== "list") element[name] = value;
      else element.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      element.append(child instanceof Node ? child : String(child));
    }
    return element;
  }

  function showProblem(message) {
    problem.textContent = message || "";
    problem.hidden = !message;
  }

  class ApiProblem extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || `the server answered ${status}`);
      this.status = status;
      this.code = error.code;
      this.parameter = error.parameter;
    }
  }

  async function api(path, options) {
    const response = await fetch(path, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      ...options,
    });
    if (response.status === 401) {
      // The login cookie is gone or stale: the page itself shows the login form.
      window.location.reload();
      throw new ApiProblem(401, null);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) throw new ApiProblem(response.status, body);
    return body;
  }

  function sessionPath(id) {
    // The browser resolves a "." or ".." segment away, even written %2E: those two ids get
    // an encoded space the server drops (no id ends with a space).
    const segment = encodeURIComponent(id);
    return "api/sessions/" + (id === "." || id === ".." ? segment + "%20" : segment);
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return "-";
    if (ms < 1000) return `${Math.round(ms)}ms`;
    const seconds = ms / 1000;
    if (seconds < 60) return `${seconds.toFixed(1)}s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes}m${String(Math.floor(seconds % 60)).padStart(2, "0")}s`;
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return `${hours}h${String(minutes % 60).padStart(2, "0")}m`;
    return `${Math.floor(hours / 24)}d${String(hours % 24).padStart(2, "0")}h`;
  }

  function formatCount(n) {
    if (n === null || n === undefined) return "-";
    if (n < 10000) return String(n);
    if (n < 999950) return `${(n / 1000).toFixed(1)}k`;
    return `${(n / 1e6).toFixed(1)}M`;
  }

  function formatCost(usd) {
    if (usd === null || usd === undefined) return "-";
    return usd < 1 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
  }

  function formatTime(iso, precise) {
    if (!iso) return "-";
    const moment = new Date(iso);
    if (isNaN(moment)) return iso;
    const text = moment.toISOString().replace("T", " ");
    return precise ? text.slice(0, 23) : text.slice(0, 19);
  }

  function formatValue(value) {
    if (typeof value === "boolean") return value ? "true" : "false";
    if (typeof value === "number") return String(Number.isInteger(value) ? value : +value.toFixed(4));
    return value;
  }

  function sessionDurationMs(session) {
    if (session.duration_ms !== null && session.duration_ms !== undefined) {
      return session.duration_ms;
    }
    return new Date(session.last_activity_at) - new Date(session.started_at);
  }

  function json(value) {
    return JSON.stringify(value, null, 2);
  }

  function statusBadge(status) {
    return h("span", { className: `badge status-${status}` }, status.replace("_", " "));
  }

  function setLive(text) {
    live.textContent = text;
  }

  // -- routing ----------------------------------------------------------------------------------
  // #/?user_id=..&status=..&q=..   the sessions list with its filters
  // #/session/<id>[/step/<n>]      a session, optionally with a step selected

  let view = null; // the view on screen; it is told to stop when another replaces it

  function route() {
    const hash = window.location.hash.replace(/^#/, "") || "/";
    const match = /^\/session\/([^/]+)(?:\/step\/(\d+))?$/.exec(hash);
    if (view) view.stop();
    showProblem("");
    setLive("");
    if (match) {
      let id;
      try {
        id = decodeURIComponent(match[1]);
      } catch (error) {
        id = match[1];
      }
      view = new SessionView(id, match[2] === undefined ? null : Number(match[2]));
    } else {
      const query = hash.includes("?") ? hash.slice(hash.indexOf("?") + 1) : "";
      view = new ListView(new URLSearchParams(query));
    }
    view.start();
  }

  window.addEventListener("hashchange", route);

  // -- the sessions list ------------------------------------------------------------------------

  class ListView {
    constructor(params) {
      this.filters = {
        user_id: params.get("user_id") || "",
        status: params.get("status") || "",
        q: params.get("q") || "",
      };
      this.cursors = [null]; // the cursor of each page seen; the last is the current page
      this.timer = null;
      this.signature = "";
      this.stopped = false;
    }

    start() {
      this.render();
      this.load();
      this.timer = setInterval(() => {
        if (!document.hidden) this.load(true);
      }, LIST_POLL_MS);
    }

    stop() {
      this.stopped = true;
      clearInterval(this.timer);
    }

    render() {
      const onFilter = () => {
        this.filters.user_id = userInput.value.trim();
        this.filters.status = statusSelect.value;
        this.filters.q = searchInput.value.trim();
        const query = new URLSearchParams(
          Object.entries(this.filters).filter(([, value]) => value)
        ).toString();
        history.replaceState(null, "", "#/" + (query ? "?" + query : ""));
        this.cursors = [null];
        this.load();
      };
      let debounce = null;
      const onType = () => {
        clearTimeout(debounce);
        debounce = setTimeout(onFilter, 250);
      };
      const userInput = h("input", {
        id: "filter-user", type: "text", value: this.filters.user_id, placeholder: "any user",
        oninput: onType,
      });
      const statusSelect = h(
        "select",
        { id: "filter-status", onchange: onFilter },
        h("option", { value: "" }, "any status"),
        STATUSES.map((status) =>
          h("option", { value: status, selected: status === this.filters.status },
            status.replace("_", " "))
        )
      );
      const searchInput = h("input", {
        id: "filter-q", type: "search", value: this.filters.q, placeholder: "session id starts with…",
        oninput: onType,
      });
      this.tbody = h("tbody");
      this.summary = h("span", { className: "count" });
      this.newer = h("button", { type: "button", id: "page-newer", onclick: () => this.page(-1) },
        "← Newer");
      this.older = h("button", { type: "button", id: "page-older", onclick: () => this.page(1) },
        "Older →");
      app.replaceChildren(
        h("section", { className: "list" },
          h("form", { className: "filters", onsubmit: (event) => event.preventDefault() },
            h("label", {}, "User ", userInput),
            h("label", {}, "Status ", statusSelect),
            h("label", { className: "grow" }, "Search ", searchInput)),
          h("table", { className: "sessions", id: "sessions" },
            h("thead", {}, h("tr", {},
              ["Session", "User", "Status", "Steps", "Duration", "Tokens", "Cost", "Started (UTC)"]
                .map((name, i) => h("th", { className: i >= 3 && i <= 6 ? "num" : "" }, name)))),
            this.tbody),
          h("nav", { className: "pager" }, this.newer, this.summary, this.older))
      );
      app.setAttribute("aria-busy", "false");
    }

    async load(quietly) {
      const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
      for (const [name, value] of Object.entries(this.filters)) if (value) params.set(name, value);
      const cursor = this.cursors[this.cursors.length - 1];
      if (cursor) params.set("cursor", cursor);
      let page;
      try {
        page = await api("api/sessions?" + params.toString());
      } catch (error) {
        if (!this.stopped) showProblem(`Could not list sessions: ${error.message}`);
        return;
      }
      if (this.stopped) return;
      showProblem("");
      this.nextCursor = page.next_cursor;
      const signature = JSON.stringify(page.sessions.map((s) =>
        [s.session_id, s.status, s.total_steps, s.last_activity_at])) + page.total;
      setLive(`live · updated ${new Date().toLocaleTimeString()}`);
      if (quietly && signature === this.signature) return;
      this.signature = signature;
      this.fill(page);
    }

    fill(page) {
      const rows = page.sessions.map((s) => {
        const link = h("a", { href: "#/session/" + encodeURIComponent(s.session_id) },
          s.session_id);
        return h("tr", { dataset: { sessionId: s.session_id } },
          h("td", { className: "mono id" }, link),
          h("td", {}, s.user_ids.join(", ") || "-"),
          h("td", {}, statusBadge(s.status)),
          h("td", { className: "num" }, s.total_steps),
          h("td", { className: "num" }, formatDuration(sessionDurationMs(s))),
          h("td", { className: "num" }, formatCount(s.total_tokens)),
          h("td", { className: "num" }, formatCost(s.cost_usd)),
          h("td", { className: "mono" }, formatTime(s.started_at)));
      });
      if (!rows.length) {
        rows.push(h("tr", {}, h("td", { colSpan: 8, className: "empty" }, "No sessions found.")));
      }
      this.tbody.replaceChildren(...rows);
      const first = (this.cursors.length - 1) * PAGE_SIZE;
      this.summary.textContent = page.sessions.length
        ? `${first + 1}–${first + page.sessions.length} of ${page.total} sessions`
        : `0 of ${page.total} sessions`;
      this.newer.disabled = this.cursors.length === 1;
      this.older.disabled = !page.next_cursor;
    }

    page(direction) {
      if (direction > 0 && this.nextCursor) this.cursors.push(this.nextCursor);
      else if (direction < 0 && this.cursors.length > 1) this.cursors.pop();
      else return;
      this.load();
    }
  }

  // -- a session --------------------------------------------------------------------------------

  class SessionView {
    constructor(id, step) {
      this.id = id;
      this.wanted = step; // step index asked for by the URL
      this.selected = null; // the entry shown in the detail panel
      this.timer = null;
      this.stopped = false;
      this.onKey = (event) => this.key(event);
    }

    start() {
      app.replaceChildren(h("p", { className: "loading" }, "Loading session…"));
      document.addEventListener("keydown", this.onKey);
      this.load();
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      document.removeEventListener("keydown", this.onKey);
    }

    async load() {
      let data;
      try {
        data = await api(sessionPath(this.id) + "/timeline");
      } catch (error) {
        if (this.stopped) return;
        app.setAttribute("aria-busy", "false");
        const what = error.status === 404 ? "There is no session with this id." : error.message;
        app.replaceChildren(h("p", { className: "loading" }, h("a", { href: "#/" }, "← Sessions")),
          h("p", { className: "empty", id: "session-missing" }, what));
        return;
      }
      if (this.stopped) return;
      const first = !this.data;
      this.data = data;
      this.byIndex = new Map(data.timeline.map((entry) => [entry.step, entry]));
      this.ordered = data.timeline; // step order: what the arrow keys walk through
      if (first) this.render();
      else this.refresh();
      if (data.session.status === "in_progress") {
        setLive("live · in progress");
        this.timer = setTimeout(() => this.load(), SESSION_POLL_MS);
      } else {
        setLive("");
      }
    }

    render() {
      const session = this.data.session;
      this.header = h("div");
      this.scores = h("section", { className: "card scores", id: "scores" });
      this.timeline = h("div", {
        className: "timeline", id: "timeline", role: "listbox", tabIndex: 0,
        "aria-label": "Steps; arrow keys or j and k move between them",
      });
      this.detail = h("aside", { className: "card detail", id: "step-detail",
        "aria-live": "polite" });
      app.replaceChildren(
        h("nav", { className: "crumbs" }, h("a", { href: "#/" }, "Sessions"), " / ",
          h("span", { className: "mono" }, session.session_id)),
        this.header,
        this.scores,
        h("div", { className: "replay" },
          h("section", { className: "card timeline-card" },
            h("h2", {}, "Timeline ",
              h("small", {}, "click a step, or walk with ↑ ↓ / j k")),
            this.timeline),
          this.detail)
      );
      app.setAttribute("aria-busy", "false");
      this.refresh();
      const wanted = this.wanted !== null && this.byIndex.get(this.wanted);
      this.select(wanted || this.ordered[0] || null, Boolean(wanted));
    }

    refresh() {
      this.renderHeader();
      this.renderScores();
      this.renderTimeline();
      if (this.selected) this.select(this.byIndex.get(this.selected.step) || null, false);
    }

    renderHeader() {
      const s = this.data.session;
      const models = Object.entries(s.usage).map(([model, usage]) =>
        `${model} (${usage.steps} step${usage.steps === 1 ? "" : "s"})`);
      const fact = (label, ...value) => h("div", { className: "fact" },
        h("dt", {}, label), h("dd", {}, ...value));
      const parent = s.parent_session_id
        ? h("a", { href: "#/session/" + encodeURIComponent(s.parent_session_id) },
          s.parent_session_id)
        : "-";
      this.header.replaceChildren(h("section", { className: "card aggregates" },
        h("h1", {}, h("span", { className: "mono" }, s.session_id), " ", statusBadge(s.status)),
        h("dl", { id: "aggregates" },
          fact("Duration", formatDuration(sessionDurationMs(s)),
            s.ended_at ? "" : h("small", {}, " so far")),
          fact("Steps", `${s.total_steps}`,
            s.error_count ? h("span", { className: "bad" }, ` · ${s.error_count} failed`) : "",
            s.dropped_steps ? ` · ${s.dropped_steps} dropped` : ""),
          fact("Tokens", `${formatCount(s.input_tokens)} in · ${formatCount(s.output_tokens)} out`),
          fact("Cost", formatCost(s.cost_usd)),
          fact("Models", models.join(", ") || "-"),
          fact("Users", s.user_ids.join(", ") || "-"),
          fact("Tags", s.tags.length ? s.tags.map((tag) => h("span", { className: "tag" }, tag))
            : "-"),
          fact("Environment", s.environment || "-"),
          fact("Started (UTC)", formatTime(s.started_at, true)),
          fact("Parent session", parent),
          s.end_reason ? fact("End reason", s.end_reason) : null)));
    }

    // -- scores -----------------------------------------------------------------------------

    renderScores() {
      if (this.editing) return; // do not wipe a form being filled in
      const scores = this.data.session.scores;
      const rows = scores.map((score) => h("tr", { dataset: { score: score.name } },
        h("td", { className: "mono" }, score.name),
        h("td", { className: "score-value", title: String(score.value) }, formatValue(score.value)),
        h("td", {}, score.comment || ""),
        h("td", { className: "muted" }, `${score.source || "sdk"} · ${formatTime(score.created_at)}`),
        h("td", {}, h("button", { type: "button", className: "link",
          onclick: () => this.editScore(score) }, "Edit"))));
      this.scores.replaceChildren(
        h("h2", {}, "Scores ", h("button", { type: "button", id: "score-add",
          onclick: () => this.editScore(null) }, "+ Add score")),
        rows.length
          ? h("table", { className: "score-table" }, h("tbody", {}, rows))
          : h("p", { className: "muted" }, "Not scored yet."));
    }

    editScore(score) {
      this.editing = true;
      const kindOf = (value) => typeof value === "boolean" ? "boolean"
        : typeof value === "number" ? "number" : "label";
      const kind = h("select", { id: "score-kind" },
        ["number", "boolean", "label"].map((k) =>
          h("option", { value: k, selected: score ? kindOf(score.value) === k : k === "number" },
            k)));
      const name = h("input", { id: "score-name", type: "text", required: true, maxLength: 100,
        value: score ? score.name : "", readOnly: Boolean(score) });
      const value = h("input", { id: "score-value", type: "text", required: true, maxLength: 100,
        value: score ? String(score.value) : "" });
      const comment = h("input", { id: "score-comment", type: "text", maxLength: 2000,
        value: score && score.comment ? score.comment : "" });
      const error = h("p", { className: "form-error", role: "alert" });
      const cancel = () => {
        this.editing = false;
        this.renderScores();
      };
      const save = async (event) => {
        event.preventDefault();
        let parsed = value.value.trim();
        if (kind.value === "number") {
          parsed = Number(parsed);
          if (value.value.trim() === "" || !isFinite(parsed)) {
            error.textContent = "The value must be a number, such as 0.8.";
            return;
          }
        } else if (kind.value === "boolean") {
          const text = parsed.toLowerCase();
          if (!["true", "false", "yes", "no", "1", "0"].includes(text)) {
            error.textContent = "The value must be true or false.";
            return;
          }
          parsed = ["true", "yes", "1"].includes(text);
        }
        const body = { name: name.value.trim(), value: parsed };
        if (comment.value.trim()) body.comment = comment.value.trim();
        try {
          await api(sessionPath(this.id) + "/scores", {
            method: "POST",
            headers: { "Content-Type": "application/json", Accept: "application/json" },
            body: JSON.stringify(body),
          });
        } catch (problem) {
          error.textContent = `Not saved: ${problem.message}`;
          return;
        }
        this.editing = false;
        clearTimeout(this.timer);
        await this.load();
      };
      this.scores.replaceChildren(
        h("h2", {}, score ? `Edit score “${score.name}”` : "Add a score"),
        h("form", { className: "score-form", id: "score-form", onsubmit: save },
          h("label", {}, "Name ", name),
          h("label", {}, "Type ", kind),
          h("label", {}, "Value ", value),
          h("label", { className: "grow" }, "Comment ", comment),
          h("button", { type: "submit", id: "score-save" }, "Save"),
          h("button", { type: "button", className: "link", onclick: cancel }, "Cancel")),
        error);
      (score ? value : name).focus();
    }

    // -- the timeline -----------------------------------------------------------------------

    renderTimeline() {
      const entries = this.data.timeline;
      if (!entries.length) {
        this.timeline.replaceChildren(h("p", { className: "empty" }, "No steps recorded."));
        return;
      }
      const session = this.data.session;
      let start = Date.parse(session.started_at);
      let end = session.ended_at ? Date.parse(session.ended_at) : start;
      for (const entry of entries) {
        const began = Date.parse(entry.timestamp);
        start = Math.min(start, began);
        end = Math.max(end, began + Math.max(entry.duration_ms, 0));
      }
      const span = Math.max(end - start, 1);
      const ticks = [0, 0.25, 0.5, 0.75, 1].map((at) => {
        const tick = h("span", { className: "tick" }, "+" + formatDuration(span * at));
        tick.style.left = `${at * 100}%`;
        return tick;
      });
      const rows = [h("div", { className: "row axis", "aria-hidden": "true" },
        h("span", { className: "label" }, "step"), h("span", { className: "track" }, ticks),
        h("span", { className: "dur" }, "time"))];
      for (const index of this.data.tree_order) {
        const entry = this.byIndex.get(index);
        if (!entry) continue;
        const bar = h("span", { className: `bar status-${entry.status}` });
        bar.style.left = `${((Date.parse(entry.timestamp) - start) / span) * 100}%`;
        bar.style.width = `${Math.max((entry.duration_ms / span) * 100, 0.4)}%`;
        const diff = entry.state_diff;
        const changes = [
          diff.added.length ? h("span", { className: "chip added" }, `+${diff.added.length}`) : "",
          diff.changed.length ? h("span", { className: "chip changed" }, `~${diff.changed.length}`)
            : "",
          diff.removed.length ? h("span", { className: "chip removed" }, `−${diff.removed.length}`)
            : "",
        ];
        const label = h("span", { className: "label" },
          h("span", { className: "index" }, `#${entry.step}`), " ",
          h("span", { className: "model" }, entry.model || entry.name || entry.kind), changes);
        label.style.paddingLeft = `${0.4 + Math.min(entry.depth, 8) * 1.1}em`;
        const row = h("div", {
          className: "row step", role: "option", id: `step-${entry.step}`,
          dataset: { step: String(entry.step) }, "aria-selected": "false",
          onclick: () => this.select(entry, true),
        }, label, h("span", { className: "track" }, bar),
        h("span", { className: "dur" }, formatDuration(entry.duration_ms)));
        rows.push(row);
      }
      this.timeline.replaceChildren(...rows);
    }

    select(entry, focus) {
      if (this.selectedRow) {
        this.selectedRow.classList.remove("selected");
        this.selectedRow.setAttribute("aria-selected", "false");
      }
      this.selected = entry;
      if (!entry) {
        this.detail.replaceChildren(h("p", { className: "muted" }, "No step selected."));
        return;
      }
      const row = document.getElementById(`step-${entry.step}`);
      if (row) {
        row.classList.add("selected");
        row.setAttribute("aria-selected", "true");
        this.timeline.setAttribute("aria-activedescendant", row.id);
        if (focus) row.scrollIntoView({ block: "nearest" });
        this.selectedRow = row;
      }
      if (focus) {
        history.replaceState(null, "",
          `#/session/${encodeURIComponent(this.id)}/step/${entry.step}`);
      }
      this.renderDetail(entry);
    }

    key(event) {
      const target = event.target;
      if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
      if (event.altKey || event.ctrlKey || event.metaKey || !this.ordered.length) return;
      const moves = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1, Home: -Infinity, End: Infinity };
      const move = moves[event.key];
      if (move === undefined) return;
      event.preventDefault();
      const at = this.selected ? this.ordered.indexOf(this.byIndex.get(this.selected.step)) : -1;
      const next = Math.min(Math.max(at + move, 0), this.ordered.length - 1);
      const to = move === -Infinity ? 0 : move === Infinity ? this.ordered.length - 1 : next;
      this.select(this.ordered[to], true);
    }

    // -- the step detail --------------------------------------------------------------------

    renderDetail(entry) {
      const previous = this.previousState(entry);
      const fact = (label, value) => h("div", { className: "fact" },
        h("dt", {}, label), h("dd", {}, value === null || value === undefined ? "-" : value));
      const parent = entry.parent_step === null ? "-"
        : h("button", { type: "button", className: "link",
          onclick: () => this.select(this.byIndex.get(entry.parent_step), true) },
        `#${entry.parent_step}`);
      const parts = [
        h("h2", {}, `Step #${entry.step} `, statusBadge(entry.status)),
        h("dl", { className: "facts" },
          fact("Model", entry.model),
          fact("Kind", [entry.kind, entry.name].filter(Boolean).join(" · ")),
          fact("Provider", [entry.provider, entry.framework].filter(Boolean).join(" · ") || "-"),
          fact("Latency", formatDuration(entry.duration_ms)),
          fact("Tokens", `${formatCount(entry.input_tokens)} in · ` +
            `${formatCount(entry.output_tokens)} out · ${formatCount(entry.tokens)} total`),
          fact("Cost", formatCost(entry.cost_usd)),
          fact("Started (UTC)", formatTime(entry.timestamp, true)),
          fact("Parent step", parent),
          fact("Trace", h("span", { className: "mono small" }, entry.trace_id)),
          entry.user_id ? fact("User", entry.user_id) : null),
      ];
      if (entry.error) {
        parts.push(h("div", { className: "error-box", id: "step-error" },
          h("strong", {}, "Error "), entry.error));
      }
      parts.push(this.stateTable(entry, previous));
      if (entry.tool_calls.length) {
        parts.push(h("h3", {}, `Tool calls (${entry.tool_calls.length})`),
          ...entry.tool_calls.map((call) => h("details", { className: "tool" },
            h("summary", {}, h("span", { className: "mono" }, call.name), " ",
              h("span", { className: "muted" }, formatDuration(call.duration_ms)),
              call.error ? h("span", { className: "bad" }, ` · ${call.error}`) : ""),
            h("div", { className: "io" }, h("h4", {}, "input"), h("pre", {}, json(call.input)),
              h("h4", {}, "output"), h("pre", {}, json(call.output))))));
      }
      parts.push(
        h("details", { className: "io", open: true, id: "step-input" },
          h("summary", {}, "Input"), h("pre", {}, json(entry.input))),
        h("details", { className: "io", open: true, id: "step-output" },
          h("summary", {}, "Output"), h("pre", {}, json(entry.output))));
      if (Object.keys(entry.metadata).length) {
        parts.push(h("details", { className: "io" }, h("summary", {}, "Metadata"),
          h("pre", {}, json(entry.metadata))));
      }
      this.detail.replaceChildren(...parts);
    }

    previousState(entry) {
      const at = this.ordered.indexOf(entry);
      return at > 0 ? this.ordered[at - 1].state_snapshot : {};
    }

    stateTable(entry, previous) {
      const diff = entry.state_diff;
      const added = new Set(diff.added);
      const changed = new Set(diff.changed);
      const rows = Object.entries(entry.state_snapshot).map(([key, value]) => {
        const kind = added.has(key) ? "added" : changed.has(key) ? "changed" : "same";
        const mark = { added: "+", changed: "~", same: "" }[kind];
        const cell = h("td", {}, h("pre", {}, json(value)));
        if (kind === "changed" && key in previous) {
          cell.append(h("div", { className: "was" }, "was ", h("code", {}, json(previous[key]))));
        }
        return h("tr", { className: `state-${kind}`, dataset: { key, change: kind } },
          h("td", { className: "mark" }, mark), h("th", { className: "mono" }, key), cell);
      });
      for (const key of diff.removed) {
        rows.push(h("tr", { className: "state-removed", dataset: { key, change: "removed" } },
          h("td", { className: "mark" }, "−"), h("th", { className: "mono" }, key),
          h("td", {}, h("pre", {}, key in previous ? json(previous[key]) : ""))));
      }
      const legend = h("p", { className: "legend" },
        h("span", { className: "chip added" }, "+ added"), " ",
        h("span", { className: "chip changed" }, "~ changed"), " ",
        h("span", { className: "chip removed" }, "− removed"), " since the step before");
      return h("section", { className: "state", id: "step-state" },
        h("h3", {}, "State"), legend,
        rows.length ? h("table", { className: "state-table" }, h("tbody", {}, rows))
          : h("p", { className: "muted" }, "Empty state."));
    }
  }

  route();
})();
