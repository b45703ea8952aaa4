// workbench ui: every page is drawn here from the /api/ JSON (docs/ui.md). No framework, no
// CDN: the UI works offline. Text from the store is only ever set as textContent, never as
// HTML, so a recorded prompt cannot inject markup into the page.
"use strict";

(() => {
  const app = document.getElementById("app");
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
    "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

  // -- helpers ---------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") el.className = value;
      else if (name === "text") el.textContent = value;
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else if (name === "style") Object.assign(el.style, value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (name === "text") el.textContent = value;
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, String(value));
    }
    for (const child of children.flat(Infinity)) if (child) el.append(child);
    return el;
  }

  class ApiError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  async function api(path, options) {
    const response = await fetch(path, options);
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `${response.status} from ${path}`;
      throw new ApiError(message, response.status);
    }
    return body;
  }

  function usd(value) {
    if (value === null || value === undefined) return "unknown";
    if (value === 0) return "$0";
    if (Math.abs(value) >= 1) return "$" + value.toFixed(2);
    return "$" + Number(value.toPrecision(3)).toString();
  }
  function seconds(value) {
    if (value === null || value === undefined) return "–";
    if (value < 1) return (value * 1000).toFixed(value < 0.01 ? 2 : 0) + " ms";
    return value.toFixed(2) + " s";
  }
  function when(ts) {
    if (!ts) return "–";
    const d = new Date(ts * 1000);
    return d.toISOString().replace("T", " ").slice(0, 19);
  }
  function metric(name, value) {
    if (value === null || value === undefined) return "unknown";
    if (name === "cost_usd") return usd(value);
    if (name.endsWith("_s")) return seconds(value);
    return num(value);
  }
  function num(value) { return value === null || value === undefined ? "–" : value.toLocaleString("en"); }
  function json(value) {
    if (typeof value === "string") return value;
    return JSON.stringify(value, null, 2);
  }
  function cut(text, n) { text = String(text); return text.length > n ? text.slice(0, n) + "…" : text; }
  function badge(status) { return h("span", { class: `badge status-${status}`, text: status }); }
  function facts(pairs) {
    return h("dl", { class: "facts" },
      pairs.filter((p) => p).map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)]));
  }
  function showError(where, error) {
    where.append(h("div", { class: "error", role: "alert", text: error.message || String(error) }));
  }
  function clear(el) { while (el.firstChild) el.firstChild.remove(); return el; }
  function pre(value, cls) { return h("pre", { class: cls || "json", text: json(value) }); }

  // -- runs ------------------------------------------------------------------------------

  const COLUMNS = [
    ["pipeline_id", "pipeline", true], ["status", "status", true], ["user_id", "user", true],
    ["started_at", "started", true], ["duration_s", "duration", true],
    ["cost_usd", "cost", true], ["tokens", "tokens", true], [null, "calls"],
    [null, "replay of"], [null, "sampled"],
  ];

  async function runsPage(root) {
    const params = new URLSearchParams(location.search);
    const state = {
      pipeline: params.get("pipeline") || "", status: params.get("status") || "",
      user: params.get("user") || "", since: params.get("since") || "",
      until: params.get("until") || "", q: params.get("q") || "",
      sort: params.get("sort") || "started_at", order: params.get("order") || "desc",
      offset: Number(params.get("offset") || 0), limit: Number(params.get("limit") || 50),
    };
    const facets = await api("/api/facets");
    const select = (name, values, label) => h("label", {}, label,
      h("select", { name, onchange: (e) => { state[name] = e.target.value; state.offset = 0; load(); } },
        h("option", { value: "", text: "any" }),
        values.map((v) => h("option", { value: v, text: v, selected: v === state[name] }))));
    const input = (name, label, placeholder) => h("label", {}, label,
      h("input", { name, value: state[name], placeholder, onchange: (e) => {
        state[name] = e.target.value.trim(); state.offset = 0; load(); } }));
    const live = h("input", { type: "checkbox", id: "live", checked: true });
    const updated = h("span", { class: "muted", id: "updated" });
    const filters = h("form", { class: "filters", id: "filters", onsubmit: (e) => e.preventDefault() },
      select("pipeline", facets.pipelines, "Pipeline"), select("status", facets.statuses, "Status"),
      select("user", facets.users, "User"), input("since", "Since", "2d, 2024-05-01"),
      input("until", "Until", "1h, 2024-06-01"), input("q", "Text in prompts", "words…"),
      h("label", { class: "check" }, live, "Live"), updated);
    const table = h("table", { class: "runs", id: "runs-table" });
    const pager = h("div", { class: "pager", id: "pager" });
    const message = h("div");
    root.append(h("h1", { text: "Runs" }), filters, message, table, pager);

    let loading = false;
    async function load(quiet) {
      if (loading) return;
      loading = true;
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries(state)) if (v !== "" && v !== null) query.set(k, v);
      history.replaceState(null, "", "/runs?" + query.toString());
      try {
        const page = await api("/api/runs?" + query.toString());
        clear(message);
        draw(page);
        updated.textContent = "updated " + new Date().toLocaleTimeString("en-GB");
      } catch (error) {
        if (!quiet) { clear(message); showError(message, error); }
      } finally { loading = false; }
    }

    function draw(page) {
      clear(table);
      const head = h("tr", {}, h("th", { text: "run" }), COLUMNS.map(([key, label, sortable]) => {
        if (!sortable) return h("th", { text: label });
        const arrow = state.sort === key ? (state.order === "desc" ? " ▼" : " ▲") : "";
        return h("th", { class: "sortable", "data-sort": key, text: label + arrow, onclick: () => {
          if (state.sort === key) state.order = state.order === "desc" ? "asc" : "desc";
          else { state.sort = key; state.order = "desc"; }
          state.offset = 0; load();
        } });
      }));
      table.append(h("thead", {}, head));
      const body = h("tbody");
      for (const run of page.runs) {
        body.append(h("tr", { class: "run-row", "data-id": run.id },
          h("td", {}, h("a", { href: `/runs/${encodeURIComponent(run.id)}`, text: run.id })),
          h("td", { text: run.pipeline_id }), h("td", {}, badge(run.status)),
          h("td", { text: run.user_id || "–" }), h("td", { text: when(run.started_at) }),
          h("td", { class: "num", text: seconds(run.duration_s) }),
          h("td", { class: "num", text: usd(run.cost_usd) }),
          h("td", { class: "num", text: num(run.tokens_in + run.tokens_out) }),
          h("td", { class: "num", text: num(run.model_calls) }),
          h("td", {}, run.replay_of ? h("a", { href: `/runs/${encodeURIComponent(run.replay_of)}`, text: run.replay_of }) : "–"),
          h("td", { text: run.sampled ? "yes" : "no" })));
      }
      if (!page.runs.length) {
        body.append(h("tr", {}, h("td", { colspan: 11, class: "empty", text: "No runs match." })));
      }
      table.append(body);
      clear(pager);
      const last = Math.min(page.offset + page.runs.length, page.total);
      pager.append(
        h("button", { id: "prev", disabled: page.offset === 0, text: "‹ Previous", onclick: () => {
          state.offset = Math.max(0, state.offset - state.limit); load(); } }),
        h("span", { id: "range", text: page.total ? `${num(page.offset + 1)}–${num(last)} of ${num(page.total)}` : "0 runs" }),
        h("button", { id: "next", disabled: last >= page.total, text: "Next ›", onclick: () => {
          state.offset += state.limit; load(); } }));
    }

    await load();
    // Live refresh: the page in view is read again while runs are being recorded.
    setInterval(() => {
      if (live.checked && document.visibilityState === "visible") load(true);
    }, 3000);
  }

  // -- a run -----------------------------------------------------------------------------

  async function runPage(root) {
    const id = root.dataset.run;
    const data = await api(`/api/runs/${encodeURIComponent(id)}`);
    const run = data.run;
    const title = h("h1", {}, `${run.pipeline_id} `, h("span", { class: "muted", text: run.id }), " ", badge(run.status));
    const summary = facts([
      ["user", run.user_id || "–"], ["environment", run.environment || "–"],
      ["started", when(run.started_at)], ["duration", seconds(run.duration_s)],
      ["cost", usd(run.cost_usd)], ["tokens", `${num(run.tokens_in)} in / ${num(run.tokens_out)} out`],
      ["model calls", num(run.model_calls)],
      ["replay of", run.replay_of ? h("a", { href: `/runs/${encodeURIComponent(run.replay_of)}`, text: run.replay_of }) : "–"],
      ["sampled", run.sampled ? "yes" : "no"], ["entrypoint", run.entrypoint || "–"],
      Object.keys(run.modifications || {}).length ? ["modifications", h("code", { text: JSON.stringify(run.modifications) })] : null,
    ]);
    root.append(title, summary);
    if (run.error) {
      root.append(h("div", { class: "error-box" }, h("strong", { text: `${run.error.type}: ` }), run.error.message,
        run.error.traceback ? h("details", {}, h("summary", { text: "traceback" }), pre(run.error.traceback, "trace")) : null));
    }
    root.append(actions(data), h("h2", { text: "Trace" }));
    const details = h("section", { class: "details", id: "details" },
      h("p", { class: "muted", text: "Click a step or a model call to see it here." }));
    root.append(waterfall(data.trace, (row) => openRow(row, id, details)), details);

    root.append(h("h2", { text: "Inputs and outputs" }),
      h("details", { open: true }, h("summary", { text: "inputs" }), pre(run.inputs)),
      h("details", {}, h("summary", { text: "outputs" }), pre(run.outputs)));
    root.append(h("h2", { text: `States (${data.states.length})` }));
    if (data.states.length) {
      root.append(h("table", { class: "list", id: "states" }, h("tr", {}, ["at", "step", "name", "value"].map((t) => h("th", { text: t }))),
        data.states.map((st) => h("tr", {}, h("td", { text: seconds(st.at) }), h("td", { text: st.step_id || "–" }),
          h("td", { text: st.name }), h("td", {}, h("pre", { class: "json small", text: cut(json(st.value), 4000) }))))));
    } else root.append(h("p", { class: "muted", text: "No states recorded." }));
    root.append(h("h2", { text: `Logs (${data.logs.length})` }));
    if (data.logs.length) {
      root.append(h("table", { class: "list", id: "logs" }, h("tr", {}, ["at", "level", "logger", "step", "message"].map((t) => h("th", { text: t }))),
        data.logs.map((r) => h("tr", { class: `log-${r.level.toLowerCase()}` }, h("td", { text: seconds(r.at) }), h("td", { text: r.level }),
          h("td", { text: r.logger }), h("td", { text: r.step_id || "–" }), h("td", { text: r.message })))));
    } else root.append(h("p", { class: "muted", text: "No logs recorded." }));
    root.append(h("h2", { text: `Profiles (${data.profiles.length})` }));
    if (data.profiles.length) {
      root.append(h("ul", { id: "profiles" }, data.profiles.map((p) => h("li", {},
        h("a", { href: `/profiles/${encodeURIComponent(p.id)}`, text: `${p.kind} profile ${p.id}` }),
        ` (${p.sampler || "no sampler"}${p.trigger ? ", trigger " + p.trigger : ""})`,
        p.error ? h("span", { class: "error-inline", text: " " + p.error }) : null))));
    } else root.append(h("p", { class: "muted", text: "No profiles for this run." }));
  }

  function actions(data) {
    const run = data.run;
    const status = h("div", { class: "action-status", id: "action-status", role: "status" });
    async function start(payload, button) {
      button.disabled = true;
      clear(status).append("Replaying…");
      try {
        const result = await api(`/api/runs/${encodeURIComponent(run.id)}/replay`, {
          method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(payload),
        });
        clear(status).append(`Replay ${result.execution_id} ${result.status}; opening it…`);
        location.href = `/runs/${encodeURIComponent(result.execution_id)}`;
      } catch (error) {
        clear(status); showError(status, error); button.disabled = false;
      }
    }
    const replay = h("button", { id: "replay", text: "Replay", onclick: (e) => start({}, e.target) });
    const stepOptions = (values) => [h("option", { value: "", text: "–" }), values.map((v) => h("option", { value: v, text: v }))];
    const form = h("form", { id: "replay-form", class: "replay-form" },
      h("label", {}, "Model", h("input", { name: "model", placeholder: "e.g. gpt-4o (every call)" })),
      h("label", {}, "Prompt of step", h("select", { name: "prompt_step" }, stepOptions(data.calls_by_step))),
      h("label", {}, "System prompt", h("textarea", { name: "system", rows: 2, placeholder: "replaces the step's system prompt" })),
      h("label", {}, "Message #", h("input", { name: "message_index", type: "number", min: 0, value: 1 })),
      h("label", {}, "Message text", h("textarea", { name: "message", rows: 2, placeholder: "replaces that message's content" })),
      h("label", {}, "From step", h("select", { name: "from_step" }, stepOptions([...new Set(data.steps.map((st) => st.step_id))]))),
      h("label", {}, "A call without a recorded answer", h("select", { name: "on_miss" },
        h("option", { value: "test-model", text: "answered by the test model" }),
        h("option", { value: "error", text: "fails the replay" }),
        h("option", { value: "live", text: "is sent for real" }))),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "use_test_models" }), "Every call from the test model"),
      h("button", { type: "submit", id: "replay-with-start", text: "Start replay" }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const payload = {};
      for (const [k, v] of new FormData(form).entries()) if (v !== "") payload[k] = k === "use_test_models" ? true : v;
      if (!payload.message) delete payload.message_index;
      start(payload, form.querySelector("button"));
    });
    const others = [];
    if (run.replay_of) others.push([run.replay_of, `${run.replay_of} (the original)`]);
    for (const replayId of data.replays) others.push([replayId, `${replayId} (a replay)`]);
    const target = h("input", { id: "compare-id", list: "compare-list", placeholder: "run id" });
    if (others.length) target.value = others[0][0];
    const compare = h("details", { id: "compare" }, h("summary", { text: "Compare with…" }),
      h("datalist", { id: "compare-list" }, others.map(([v, label]) => h("option", { value: v, text: label }))),
      h("form", { class: "inline", onsubmit: (e) => {
        e.preventDefault();
        const other = target.value.trim();
        if (!other) return;
        const [a, b] = other === run.replay_of ? [other, run.id] : [run.id, other];
        location.href = `/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
      } }, target, h("button", { id: "compare-open", text: "Open diff" })),
      others.length ? h("ul", {}, others.map(([v, label]) => h("li", {},
        h("a", { class: "compare-link", href: v === run.replay_of ? `/diff?a=${encodeURIComponent(v)}&b=${encodeURIComponent(run.id)}` : `/diff?a=${encodeURIComponent(run.id)}&b=${encodeURIComponent(v)}`, text: label })))) : null);
    return h("div", { class: "actions" }, replay,
      h("details", { id: "replay-with" }, h("summary", { text: "Replay with…" }), form), compare, status);
  }

  // The waterfall: one row per execution, span, step and model call, all on the run's time
  // axis. Rows are drawn only where they are in view (a run of 10,000 spans stays fast).
  function waterfall(trace, onOpen) {
    const ROW = 22;
    const rows = trace.rows;
    const total = trace.duration_s || Math.max(0.001, ...rows.map((r) => r.end || r.start));
    const pct = (t) => `${Math.max(0, Math.min(100, (t / total) * 100))}%`;
    const axis = h("div", { class: "wf-axis" }, h("div", { class: "wf-label" }, `${rows.length} rows`),
      h("div", { class: "wf-track" }, [0, 0.25, 0.5, 0.75, 1].map((f) =>
        h("span", { class: "wf-tick", style: { left: `${f * 100}%` }, text: seconds(total * f) }))));
    const viewport = h("div", { class: "wf-viewport", id: "waterfall" });
    viewport.style.height = `${Math.min(rows.length * ROW + 2, 640)}px`;
    const spacer = h("div", { class: "wf-spacer" });
    spacer.style.height = `${rows.length * ROW}px`;
    viewport.append(spacer);
    let drawn = [-1, -1];
    function rowElement(row, index) {
      const end = row.end === null || row.end === undefined ? total : row.end;
      const bar = h("div", { class: `wf-bar kind-${row.kind} st-${row.status}${row.end == null ? " open" : ""}`,
        title: `${row.name}: ${seconds(row.start)} → ${row.end == null ? "running" : seconds(row.end)} (${seconds(end - row.start)})` });
      bar.style.left = pct(row.start);
      bar.style.width = `max(2px, ${pct(end - row.start)})`;
      const track = h("div", { class: "wf-track" }, bar);
      if (row.kind === "model_call") {
        if (row.ttft_s !== null && row.ttft_s !== undefined) {
          const first = h("div", { class: "wf-ttft", title: `time to first token ${seconds(row.ttft_s)}` });
          first.style.left = pct(row.start + row.ttft_s);
          track.append(first);
        }
        for (const offset of row.chunks || []) {
          const tick = h("div", { class: "wf-chunk" });
          tick.style.left = pct(row.start + offset);
          track.append(tick);
        }
      }
      const label = h("div", { class: "wf-label", title: row.name },
        h("span", { class: `wf-kind kind-${row.kind}`, text: { execution: "run", step: "step", span: "span", model_call: "call" }[row.kind] }),
        row.name);
      label.style.paddingLeft = `${4 + row.depth * 14}px`;
      const el = h("div", { class: `wf-row row-${row.kind}`, "data-key": row.key, "data-kind": row.kind,
        "data-depth": row.depth, "data-parent": row.parent || "", "data-name": row.name,
        tabindex: 0, onclick: () => { select(el); onOpen(row); },
        onkeydown: (e) => { if (e.key === "Enter") { select(el); onOpen(row); } } }, label, track);
      el.style.top = `${index * ROW}px`;
      return el;
    }
    let selected = null;
    function select(el) {
      for (const other of viewport.querySelectorAll(".wf-row.selected")) other.classList.remove("selected");
      el.classList.add("selected");
      selected = el.dataset.key;
    }
    function draw() {
      const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - 20);
      const last = Math.min(rows.length, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW) + 20);
      if (first === drawn[0] && last === drawn[1]) return;
      drawn = [first, last];
      for (const old of spacer.querySelectorAll(".wf-row")) old.remove();
      const fragment = document.createDocumentFragment();
      for (let i = first; i < last; i++) {
        const el = rowElement(rows[i], i);
        if (rows[i].key === selected) el.classList.add("selected");
        fragment.append(el);
      }
      spacer.append(fragment);
      // The first rows on the page: what the benchmark times (benchmarks/bench_ui.py).
      if (!performance.getEntriesByName("waterfall-drawn").length) performance.mark("waterfall-drawn");
    }
    viewport.addEventListener("scroll", () => requestAnimationFrame(draw));
    // The viewport's height is known once it is in the document.
    requestAnimationFrame(draw);
    const wrapper = h("section", { class: "waterfall" }, axis, viewport);
    wrapper.drawNow = draw;
    setTimeout(draw, 0);
    return wrapper;
  }

  async function openRow(row, runId, details) {
    const base = `/api/runs/${encodeURIComponent(runId)}`;
    clear(details).append(h("p", { class: "muted", text: "Loading…" }));
    try {
      if (row.kind === "model_call") {
        const call = await api(`${base}/calls/${encodeURIComponent(row.call_id)}`);
        clear(details).append(callView(call));
      } else if (row.kind === "step") {
        const step = await api(`${base}/steps/${encodeURIComponent(row.step_id)}/${row.occurrence}`);
        clear(details).append(stepView(step, row, runId, details));
      } else {
        clear(details).append(h("h3", { text: row.name }), facts([["kind", row.kind], ["status", row.status],
          ["start", seconds(row.start)], ["end", row.end == null ? "running" : seconds(row.end)]]));
      }
    } catch (error) { clear(details); showError(details, error); }
  }

  function stepView(step, row, runId, details) {
    const view = h("div", { class: "step-view", id: "step-view" },
      h("h3", {}, `Step ${step.step_id}`, step.occurrence ? ` #${step.occurrence}` : "", " ", badge(step.status)),
      facts([["action", step.action || "–"], ["start", seconds(step.start)], ["duration", seconds(step.duration_s)],
        ["retries", String(step.retries)], ["parent step", step.parent_step_id || "–"],
        ["states", step.states.join(", ") || "–"]]),
      h("h4", { text: "Parameters" }), pre(step.parameters),
      h("h4", { text: "Result" }), pre(step.result));
    if (step.error) {
      view.append(h("h4", { text: "Error" }), h("div", { class: "error-box" },
        h("strong", { text: `${step.error.type}: ` }), step.error.message,
        step.error.traceback ? pre(step.error.traceback, "trace") : null));
    }
    if (step.model_calls.length) {
      view.append(h("h4", { text: "Model calls" }), h("ul", {}, step.model_calls.map((callId) =>
        h("li", {}, h("a", { href: "#", text: callId, onclick: (e) => {
          e.preventDefault(); openRow({ kind: "model_call", call_id: callId }, runId, details); } })))));
    }
    return view;
  }

  function message(msg) {
    return h("div", { class: `msg role-${msg.role}` }, h("div", { class: "role", text: msg.role }),
      msg.parts.map((part) => {
        if (part.type === "text") return h("div", { class: "text", text: part.text });
        if (part.type === "image") return h("div", { class: "placeholder", text: `[image: ${part.source}]` });
        if (part.type === "tool_call") return h("div", { class: "tool-call" }, h("strong", { text: `→ ${part.name}` }),
          part.id ? h("span", { class: "muted", text: ` ${part.id}` }) : null, h("pre", { class: "json small", text: part.arguments }));
        if (part.type === "tool_result") return h("div", { class: "tool-result" }, h("strong", { text: `← result${part.id ? " " + part.id : ""}` }),
          h("pre", { class: "json small", text: part.text }));
        return h("pre", { class: "json small", text: part.json });
      }));
  }

  function callView(call) {

    const view = h("div", { class: "call-view", id: "call-view" },
      h("h3", {}, `Model call ${call.model || call.operation} `, h("span", { class: "muted", text: call.id })),
      facts([["provider", call.provider], ["operation", call.operation], ["status", String(call.status_code ?? "–")],
        ["step", call.step_id || "–"], ["start", seconds(call.start)], ["latency", seconds(call.latency_s)],
        ["time to first token", seconds(call.ttft_s)],
        ["input tokens", num(call.input_tokens) + (call.tokens_estimated ? " (estimated)" : "")],
        ["of which cached", num(call.cache_read_tokens)],
        ["output tokens", num(call.output_tokens)],
        call.cache_write_tokens ? ["cache write tokens", num(call.cache_write_tokens)] : null,
        ["cost", usd(call.cost_usd)], ["finish reason", call.finish_reason || "–"],
        ["answered", call.replayed ? "from a recording" : "by the provider"],
        ["request", `${call.method || ""} ${call.url || ""}`]]));
    if (call.error) view.append(h("div", { class: "error-box" }, h("strong", { text: `${call.error.type}: ` }), call.error.message));
    if (call.stream_error) view.append(h("div", { class: "error-box", text: `stream: ${call.stream_error}` }));
    view.append(h("h4", { text: "Request" }));
    if (call.messages.length) view.append(h("div", { class: "chat", id: "chat" }, call.messages.map(message)));
    else view.append(pre(call.request_body));
    view.append(h("h4", { text: "Response" }));
    if (call.response_messages.length) view.append(h("div", { class: "chat response", id: "response" }, call.response_messages.map(message)));
    else view.append(pre(call.response));
    if (call.streamed) {
      view.append(h("h4", { text: `Stream (${call.events.length} events in ${call.chunks.length} chunks)` }));
      const rows = call.events.length
        ? call.events.map((ev) => h("tr", {}, h("td", { class: "num", text: seconds(ev.offset_s) }), h("td", { text: ev.event || "message" }),
          h("td", {}, h("code", { title: ev.data, text: cut(ev.data, 240) }))))
        : call.chunks.map((c) => h("tr", {}, h("td", { class: "num", text: seconds(c.offset_s) }), h("td", { text: "chunk" }), h("td", { text: `${c.bytes} bytes` })));
      view.append(h("table", { class: "list", id: "sse" }, h("tr", {}, ["offset", "event", "data"].map((t) => h("th", { text: t }))), rows));
    }
    view.append(h("details", {}, h("summary", { text: "raw request and response" }),
      h("h4", { text: "request headers" }), pre(call.request_headers), h("h4", { text: "request body" }), pre(call.request_body),
      h("h4", { text: "response headers" }), pre(call.response_headers), h("h4", { text: "response" }), pre(call.response)));
    return view;
  }

  // -- diff ------------------------------------------------------------------------------

  function segmentsView(segments, side) {
    const el = h("div", { class: "words" });
    for (const [op, text] of segments) {
      if (op === "equal") el.append(text);
      else if (op === "delete" && side === "a") el.append(h("del", { text }));
      else if (op === "insert" && side === "b") el.append(h("ins", { text }));
    }
    return el;
  }

  function differenceView(d) {
    let before, after;
    if (d.segments) { before = segmentsView(d.segments, "a"); after = segmentsView(d.segments, "b"); }
    else {
      before = d.kind === "added" ? h("span", { class: "muted", text: "(not in a)" }) : h("del", {}, pre(d.before));
      after = d.kind === "removed" ? h("span", { class: "muted", text: "(not in b)" }) : h("ins", {}, pre(d.after));
    }
    return h("div", { class: `difference kind-${d.kind}`, "data-path": d.path },
      h("div", { class: "path" }, h("span", { class: `badge kind-${d.kind}`, text: d.kind }), " ", h("code", { text: d.within })),
      h("div", { class: "sides" }, h("div", { class: "side a" }, before), h("div", { class: "side b" }, after)));
  }

  async function diffPage(root) {
    const a = root.dataset.a, b = root.dataset.b;
    const diff = await api(`/api/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    const summary = diff.summary;
    const runLink = (r) => h("a", { href: `/runs/${encodeURIComponent(r.id)}`, text: r.id });
    root.append(h("h1", { text: "Diff" }),
      h("div", { class: "diff-head" },
        ["a", "b"].map((side) => h("div", { class: `run-card side ${side}` }, h("strong", { text: `${side}: ` }), runLink(diff[side]), " ",
          badge(diff[side].status), facts([["pipeline", `${diff[side].pipeline_id} v${diff[side].pipeline_version ?? "–"}`],
            ["cost", usd(diff[side].cost_usd)], ["duration", seconds(diff[side].duration_s)],
            ["tokens", `${num(diff[side].tokens_in)} in / ${num(diff[side].tokens_out)} out`]])))),
      h("p", { id: "diff-summary" }, diff.equal ? "The runs do not differ in content. " : "",
        `${summary.counts.changed} changed, ${summary.counts.added} added, ${summary.counts.removed} removed; `,
        "first divergent step: ", h("strong", { id: "first-divergent", text: summary.first_divergent_step || "none" })),
      h("table", { class: "list", id: "totals" }, h("tr", {}, ["total", "a", "b", "change"].map((t) => h("th", { text: t }))),
        Object.entries(summary.totals).map(([name, d]) => h("tr", {}, h("td", { text: name }),
          h("td", { class: "num", text: name === "cost_usd" ? usd(d.before) : name === "latency_s" ? seconds(d.before) : num(d.before) }),
          h("td", { class: "num", text: name === "cost_usd" ? usd(d.after) : name === "latency_s" ? seconds(d.after) : num(d.after) }),
          h("td", { class: "num", text: d.relative === null ? (d.absolute === null ? "unknown" : String(d.absolute)) : `${(d.relative * 100).toFixed(1)}%` })))),
      summary.notes.length ? h("ul", { class: "notes" }, summary.notes.map((n) => h("li", { text: n }))) : null);

    const byStep = new Map();
    const outside = [];
    for (const d of diff.differences) {
      if (d.step_id === null) { outside.push(d); continue; }
      const key = `${d.step_id}#${d.occurrence}`;
      if (!byStep.has(key)) byStep.set(key, []);
      byStep.get(key).push(d);
    }
    const side = (info) => info ? h("span", {}, badge(info.status), ` ${seconds(info.duration_s)}`) : h("span", { class: "muted", text: "(not in this run)" });
    root.append(h("h2", { text: "Steps, aligned" }),
      h("table", { class: "list", id: "diff-steps" }, h("tr", {}, ["step", "a", "b", "differences"].map((t) => h("th", { text: t }))),
        diff.steps.map((step) => h("tr", {
          class: ["step-row", step.differences ? "differs" : "same", step.first_divergent ? "first-divergent" : "", !step.a ? "only-b" : "", !step.b ? "only-a" : ""].join(" ").trim(),
          "data-step": step.key, onclick: () => { const t = document.getElementById(`step-${step.key}`); if (t) t.scrollIntoView({ block: "start" }); },
        }, h("td", {}, step.key, step.first_divergent ? h("span", { class: "badge first", text: "first divergence" }) : null),
        h("td", {}, side(step.a)), h("td", {}, side(step.b)), h("td", { class: "num", text: String(step.differences) })))));
    root.append(h("h2", { text: "Differences" }));
    if (outside.length) root.append(h("section", { class: "diff-group", id: "step-execution" }, h("h3", { text: "The execution" }), outside.map(differenceView)));
    for (const [key, list] of byStep) {
      root.append(h("section", { class: `diff-group${key === summary.first_divergent_step ? " first-divergent" : ""}`, id: `step-${key}` },
        h("h3", { text: `Step ${key}` }), list.map(differenceView)));
    }
    if (!diff.differences.length) root.append(h("p", { class: "muted", text: "No differences in content." }));
    if (diff.deltas.length) {
      root.append(h("h2", { text: "Cost and latency" }), h("table", { class: "list", id: "deltas" },
        h("tr", {}, ["where", "metric", "a", "b", "change"].map((t) => h("th", { text: t }))),
        diff.deltas.slice(0, 500).map((d) => h("tr", {}, h("td", { text: d.path }), h("td", { text: d.metric }),
          h("td", { class: "num", text: metric(d.metric, d.before) }), h("td", { class: "num", text: metric(d.metric, d.after) }),
          h("td", { class: "num", text: d.relative === null ? "–" : `${(d.relative * 100).toFixed(1)}%` })))));
    }
    const first = document.querySelector("#diff-steps tr.first-divergent");
    if (first) first.scrollIntoView({ block: "center" });
    performance.mark("diff-drawn");
  }

  // -- costs -----------------------------------------------------------------------------

  function costChart(data) {
    const W = 900, H = 260, L = 84, B = 40, T = 10;
    const days = data.days, n = days.length;
    const max = Math.max(...data.totals, 0) || 1;
    const bw = (W - L - 10) / n;
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", id: "cost-chart", role: "img",
      "aria-label": `daily cost by ${data.by}` });
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      svg.append(s("line", { x1: L, x2: W - 10, y1: y(v), y2: y(v), class: "grid" }),
        s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis", text: usd(v) }));
    }
    days.forEach((day, i) => {
      let base = 0;
      data.series.forEach((serie, k) => {
        const v = serie.costs[i];
        if (!v) return;
        svg.append(s("rect", { x: L + i * bw + 1, width: Math.max(1, bw - 2), y: y(base + v), height: y(base) - y(base + v),
          fill: PALETTE[k % PALETTE.length], class: "bar", "data-day": day, "data-name": serie.name },
        s("title", { text: `${day} ${serie.name}: ${usd(v)}` })));
        base += v;
      });
      if (n <= 14 || i % Math.ceil(n / 10) === 0) {
        svg.append(s("text", { x: L + i * bw + bw / 2, y: H - B + 16, "text-anchor": "middle", class: "axis", text: day.slice(5) }));
      }
    });
    return svg;
  }

  async function costsPage(root) {
    const params = new URLSearchParams(location.search);
    const state = { by: params.get("by") || "model", days: params.get("days") || "30" };
    const body = h("div");
    const choose = (name, values, label) => h("label", {}, label, h("select", { name, onchange: (e) => { state[name] = e.target.value; load(); } },
      values.map(([v, t]) => h("option", { value: v, text: t, selected: v === state[name] }))));
    root.append(h("h1", { text: "Costs" }), h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
      choose("by", [["model", "model"], ["pipeline", "pipeline"], ["user", "user"]], "By"),
      choose("days", [["7", "7 days"], ["14", "14 days"], ["30", "30 days"], ["90", "90 days"]], "Over")), body);
    async function load() {
      history.replaceState(null, "", `/costs?by=${state.by}&days=${state.days}`);
      let data;
      try { data = await api(`/api/costs?by=${state.by}&days=${state.days}`); } catch (error) { clear(body); showError(body, error); return; }
      clear(body);
      body.append(h("p", { id: "cost-total" }, `${usd(data.total)} over ${num(data.calls)} priced model calls from ${data.days[0]} to ${data.days[data.days.length - 1]} (${data.timezone})`,
        data.unpriced_calls ? h("span", { class: "warn", text: `; ${data.unpriced_calls} calls have no known price and are in no total` }) : ""));
      body.append(h("h2", { text: `Daily cost by ${data.by}` }), costChart(data),
        h("ul", { class: "legend" }, data.series.map((serie, k) => h("li", {},
          h("span", { class: "swatch", style: { background: PALETTE[k % PALETTE.length] } }), `${serie.name}: ${usd(serie.total)}`))));
      body.append(h("h2", { text: "Budgets" }));
      if (!data.budgets.length) body.append(h("p", { class: "muted", id: "no-budgets", text: "No budgets are set (cost_tracking.budgets in workbench.yaml)." }));
      else body.append(h("table", { class: "list", id: "budgets" }, h("tr", {}, ["budget", "period", "spent", "limit", ""].map((t) => h("th", { text: t }))),
        data.budgets.map((b) => {
          const meter = h("div", { class: "meter" }, h("div", { class: `fill${b.ratio >= 1 ? " over" : b.ratio >= 0.8 ? " near" : ""}` }));
          meter.firstChild.style.width = `${Math.min(100, (b.ratio || 0) * 100)}%`;
          return h("tr", {}, h("td", { text: b.user ? `${b.name} (${b.user})` : b.name }), h("td", { text: b.period }),
            h("td", { class: "num", text: usd(b.spent) }), h("td", { class: "num", text: usd(b.limit) }),
            h("td", {}, meter, ` ${((b.ratio || 0) * 100).toFixed(0)}%`));
        })));
    }
    await load();
  }

  // -- profiles --------------------------------------------------------------------------

  function flameTree(doc) {
    const frames = (doc.shared && doc.shared.frames) || [];
    const root = { name: "all", value: 0, children: new Map() };
    const add = (stack, weight) => {
      let node = root;
      root.value += weight;
      for (const index of stack) {
        let child = node.children.get(index);
        if (!child) {
          const frame = frames[index] || { name: String(index) };
          child = { name: frame.name, file: frame.file, line: frame.line, value: 0, children: new Map() };
          node.children.set(index, child);
        }
        child.value += weight;
        node = child;
      }
    };
    for (const profile of doc.profiles || []) {
      if (profile.type === "sampled") {
        profile.samples.forEach((stack, i) => add(stack, profile.weights ? profile.weights[i] : 1));
      } else if (profile.type === "evented") {
        const stack = [];
        let last = profile.startValue || 0;
        for (const event of profile.events) {
          if (stack.length && event.at > last) add(stack, event.at - last);
          last = event.at;
          if (event.type === "O") stack.push(event.frame);
          else if (event.type === "C") stack.pop();
        }
      }
    }
    return root;
  }

  function flameGraph(root) {
    const W = 1000, ROWH = 18;
    const holder = h("div", { class: "flame", id: "flame" });
    function depthOf(node) { let d = 0; for (const c of node.children.values()) d = Math.max(d, depthOf(c)); return d + 1; }
    function draw(top) {
      clear(holder);
      const depth = Math.min(depthOf(top), 80);
      const svg = s("svg", { viewBox: `0 0 ${W} ${depth * ROWH}`, class: "flame-svg", role: "img", "aria-label": "flame graph" });
      const place = (node, x, level, width) => {
        if (width < 0.3 || level >= depth) return;
        const g = s("g", { class: "frame", "data-name": node.name, onclick: () => draw(node) },
          s("title", { text: `${node.name}${node.file ? " " + node.file + ":" + (node.line ?? "") : ""}: ${(node.value / top.value * 100).toFixed(1)}%` }),
          s("rect", { x, y: level * ROWH, width, height: ROWH - 1, fill: `hsl(${20 + (hash(node.name) % 40)}, 80%, ${55 + (hash(node.name) % 20)}%)` }));
        if (width > 36) g.append(s("text", { x: x + 3, y: level * ROWH + 13, text: cut(node.name, Math.floor(width / 7)) }));
        svg.append(g);
        let cx = x;
        for (const child of [...node.children.values()].sort((p, q) => q.value - p.value)) {
          const cw = (child.value / node.value) * width;
          place(child, cx, level + 1, cw);
          cx += cw;
        }
      };
      place(top, 0, 0, W);
      holder.append(top !== root ? h("button", { text: "Reset zoom", onclick: () => draw(root) }) : "", svg);
    }
    function hash(text) { let x = 0; for (const c of String(text)) x = (x * 31 + c.charCodeAt(0)) >>> 0; return x; }
    draw(root);
    return holder;
  }

  async function profilePage(root) {
    const id = root.dataset.profile;
    const p = await api(`/api/profiles/${encodeURIComponent(id)}`);
    root.append(h("h1", {}, `${p.kind} profile `, h("span", { class: "muted", text: p.id })),
      facts([["run", p.execution_id ? h("a", { href: `/runs/${encodeURIComponent(p.execution_id)}`, text: p.execution_id }) : "–"],
        ["sampler", p.sampler || "–"], ["trigger", p.trigger || "–"], ["duration", seconds(p.duration_s)],
        ["samples", num(p.samples)], p.peak_bytes ? ["peak heap", `${num(p.peak_bytes)} bytes`] : null]));
    if (p.error) root.append(h("div", { class: "error-box", text: p.error }));
    if (p.notes.length) root.append(h("ul", { class: "notes" }, p.notes.map((n) => h("li", { text: n }))));
    const url = (a) => `/api/profiles/${encodeURIComponent(id)}/artifact?role=${encodeURIComponent(a.role)}`;
    const speedscope = p.artifacts.find((a) => a.format === "speedscope" && a.available);
    if (speedscope) {
      root.append(h("h2", { text: "Flame graph" }), h("p", { class: "muted", text: "Drawn from the speedscope file; click a frame to zoom." }));
      try { root.append(flameGraph(flameTree(await api(url(speedscope))))); } catch (error) { showError(root, error); }
    }
    for (const a of p.artifacts.filter((x) => x.format === "html")) {
      root.append(h("p", {}, a.available ? h("a", { href: url(a), target: "_blank", rel: "noopener", class: "artifact", text: `Open ${a.name} (memray's own flame graph, as it is)` })
        : h("span", { class: "muted", text: `${a.name} is not on this machine any more` })));
    }
    root.append(h("h2", { text: "Top functions" }));
    if (p.top_functions.length) {
      const unit = (f, v) => f.unit === "B" ? `${num(Math.round(v))} B` : seconds(v);
      root.append(h("table", { class: "list", id: "functions" }, h("tr", {}, ["function", "where", "self", "total", p.kind === "async" ? "calls" : "count"].map((t) => h("th", { text: t }))),
        p.top_functions.map((f) => h("tr", {}, h("td", {}, h("code", { text: f.name })), h("td", { class: "muted", text: `${f.file}${f.line ? ":" + f.line : ""}` }),
          h("td", { class: "num", text: unit(f, f.self) }), h("td", { class: "num", text: unit(f, f.total) }), h("td", { class: "num", text: num(f.count) })))));
    } else root.append(h("p", { class: "muted", text: "No functions recorded." }));
    if (p.top_stacks.length) {
      root.append(h("h2", { text: "Largest stacks at the peak" }), h("ol", {}, p.top_stacks.map((st) => h("li", {},
        `${num(st.size)} bytes in ${num(st.allocations)} allocations`, h("pre", { class: "trace small", text: st.frames.map((f) => `${f[0]} ${f[1]}:${f[2]}`).join("\n") })))));
    }
    for (const a of p.artifacts) {
      if (a.format !== "html") root.append(h("p", {}, a.available ? h("a", { href: url(a), class: "artifact", text: `Download ${a.name}` }) : h("span", { class: "muted", text: `${a.name} is not on this machine any more` })));
    }
  }

  // -- experiments -----------------------------------------------------------------------

  async function experimentsPage(root) {
    const data = await api("/api/experiments");
    root.append(h("h1", { text: "Experiments" }));
    if (!data.experiments.length) {
      root.append(h("div", { class: "empty-state", id: "no-experiments" }, h("p", { text: "No experiments in this store yet." }),
        h("p", { class: "muted", text: "An experiment replays many runs with one change and lists the runs it changed, costliest first; each opens its diff." })));
      return;
    }
    for (const e of data.experiments) {
      const changedRuns = e.run_list.filter((r) => r.changed || r.status === "failed");
      root.append(h("section", { class: "experiment", id: `experiment-${e.id}` },
        h("h2", { text: `${e.name || e.id} (${e.pipeline_id || "–"})` }),
        h("p", { class: "muted", text: `${e.status} · ${e.engine} · ${num(e.runs)} runs, ${num(e.changed)} changed, ${num(e.failed)} failed · cost ${usd(e.cost_before)} → ${usd(e.cost_after)} · ${JSON.stringify(e.modifications)}` }),
        changedRuns.length
          ? h("table", { class: "list changed-runs" },
            h("tr", {}, ["run", "status", "first divergent step", "cost before", "cost after", ""].map((t) => h("th", { text: t }))),
            changedRuns.map((r) => h("tr", {},
              h("td", {}, h("a", { href: `/runs/${encodeURIComponent(r.original_id)}`, text: r.original_id })),
              h("td", { text: r.status }),
              h("td", { text: r.first_divergent_step || (r.error || "–") }),
              h("td", { text: usd(r.cost_before) }), h("td", { text: usd(r.cost_after) }),
              h("td", {}, r.diff ? h("a", { href: r.diff, class: "open-diff", text: "diff" }) : "–"))))
          : h("p", { text: "No run changed." })));
    }
  }

  const PAGES = { runs: runsPage, run: runPage, diff: diffPage, costs: costsPage, profile: profilePage, experiments: experimentsPage };
  const page = PAGES[app.dataset.page];
  if (page) page(app).catch((error) => showError(app, error));
})();
