/// `GET /ui`: the status page, one HTML document with its style and script inside, compiled
/// into the binary (nothing is fetched from anywhere else, no CDN).
///
/// The page is the one route served without a token, and it holds no data: it asks for a
/// token, keeps it in the tab's `sessionStorage` (gone when the tab closes, never in a URL or
/// a cookie) and sends it as `Authorization: Bearer` to the same API as the command line, so
/// it shows exactly what that token may see. It redraws itself every two seconds: services
/// with their load balancers and backends per zone, endpoints with their ENIs per zone,
/// connection states, live flows per endpoint, and the recent events. Green is healthy, red
/// unhealthy, purple shifted away (a zonal shift); the `data-*` attributes name each drawn object for tests and scripts.
enum StatusPage {
    /// Seconds between redraws.
    static let refreshSeconds = 2

    static let html = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>ZoneLink status</title>
        <style>
        body { font: 14px system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d232b; }
        header { background: #1d232b; color: #fff; padding: 10px 18px; display: flex; gap: 18px; align-items: baseline; }
        header h1 { font-size: 17px; margin: 0; }
        main { padding: 14px 18px; display: grid; gap: 14px; }
        section { background: #fff; border: 1px solid #d8dde3; border-radius: 6px; padding: 10px 14px; }
        h2 { font-size: 15px; margin: 0 0 8px; }
        .row { display: flex; flex-wrap: wrap; gap: 10px; align-items: stretch; }
        .card { border: 1px solid #d8dde3; border-radius: 6px; padding: 8px 10px; min-width: 220px; }
        .zone { border-left: 4px solid #9aa4ae; padding: 4px 8px; margin: 6px 0; }
        .chip { display: inline-block; border-radius: 10px; padding: 1px 8px; margin: 2px; font-size: 12px; color: #fff; }
        .healthy { background: #1f8f4e; border-color: #1f8f4e; }
        .unhealthy { background: #c62828; border-color: #c62828; }
        .unknown { background: #8a949e; border-color: #8a949e; }
        .shifted { background: #6a4c93; border-color: #6a4c93; }
        .zone.healthy, .zone.unhealthy, .zone.unknown, .zone.shifted { background: none; }
        .state-Connected { color: #1f8f4e; } .state-Disconnected { color: #8a6d00; } .state-Rejected { color: #c62828; }
        .muted { color: #66717d; font-size: 12px; }
        #events li { font-family: ui-monospace, monospace; font-size: 12px; }
        #login { max-width: 420px; margin: 60px auto; }
        #login input { width: 100%; box-sizing: border-box; padding: 6px; margin: 8px 0; font-family: ui-monospace, monospace; }
        #problem { color: #c62828; }
        </style>
        </head>
        <body>
        <header><h1>ZoneLink</h1><span id="status" class="muted"></span><span style="flex:1"></span>
        <button id="logout" hidden>Forget token</button></header>
        <section id="login" hidden>
          <h2>Token</h2>
          <p class="muted">The page asks the control API with this token. It stays in this tab only (session storage) and is sent as a bearer header.</p>
          <form id="login-form"><input id="token" type="password" autocomplete="off" placeholder="token">
          <button type="submit">Show</button></form>
          <p id="problem"></p>
        </section>
        <main id="board" hidden>
          <section><h2>Services, load balancers and backends</h2><div id="services" class="row"></div></section>
          <section><h2>Endpoints and their ENIs</h2><div id="endpoints" class="row"></div></section>
          <section><h2>Recent events</h2><ul id="events"></ul></section>
        </main>
        <script>
        "use strict";
        const KEY = "zonelink.token";
        const $ = (id) => document.getElementById(id);
        function el(tag, attrs, ...children) {
          const node = document.createElement(tag);
          for (const [k, v] of Object.entries(attrs || {})) {
            if (k === "class") node.className = v; else node.setAttribute(k, v);
          }
          for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
          return node;
        }
        function health(ok) { return ok === undefined ? "unknown" : (ok ? "healthy" : "unhealthy"); }
        function shiftedChip(zone) {
          return el("span", { class: "chip shifted", "data-shifted": zone }, "shifted away");
        }
        function showLogin(problem) {
          $("board").hidden = true; $("logout").hidden = true; $("login").hidden = false;
          $("problem").textContent = problem || "";
          $("status").textContent = "";
        }
        async function api(path) {
          const token = sessionStorage.getItem(KEY);
          const r = await fetch(path, { headers: { "Authorization": "Bearer " + token, "Accept": "application/json" }, cache: "no-store" });
          if (r.status === 401) { const e = new Error("unauthorized"); e.unauthorized = true; throw e; }
          if (!r.ok) throw new Error(path + ": " + r.status);
          return r.json();
        }
        function drawServices(services, report) {
          const box = $("services"); box.replaceChildren();
          for (const s of services) {
            const card = el("div", { class: "card", "data-service": s.id },
              el("strong", {}, s.id), " ", el("span", { class: "muted" }, "account " + s.account + (s.zoneAffinity ? ", zone affinity" : "")));
            const resources = s.resources || s.zones.map((z) => ({ zone: z }));
            for (const r of resources) {
              const backends = report.backends.filter((b) => r.loadBalancer && b.loadBalancer === r.loadBalancer);
              const ok = backends.length ? backends.some((b) => b.healthy) : undefined;
              const shifted = (report.zonalShifts || []).some((z) => z.zone === r.zone);
              const zone = el("div", { class: "zone " + (shifted ? "shifted" : health(ok)), "data-zone": r.zone, "data-health": health(ok) },
                el("div", {}, r.zone + (r.loadBalancer ? " · " + r.loadBalancer : "")));
              if (shifted) zone.append(shiftedChip(r.zone));
              for (const b of backends) {
                zone.append(el("span", { class: "chip " + health(b.healthy), "data-backend": b.loadBalancer + "/" + b.listener + "/" + b.address,
                  "data-health": health(b.healthy) }, b.address + (b.shiftedAway ? " (shifted away)" : "")));
              }
              card.append(zone);
            }
            box.append(card);
          }
          if (!services.length) box.append(el("span", { class: "muted" }, "no service this token may see"));
        }
        function drawEndpoints(endpoints, report, flows) {
          const box = $("endpoints"); box.replaceChildren();
          for (const e of endpoints) {
            const count = flows.filter((f) => f.endpoint === e.id).length;
            const card = el("div", { class: "card", "data-endpoint": e.id },
              el("strong", {}, e.id), " → ", e.service, el("br"),
              el("span", { class: "state-" + e.connection, "data-connection": e.connection }, e.connection), " ",
              el("span", { class: "muted" }, (e.placement ? e.placement.vpc + ", " : "") + "account " + e.account), el("br"),
              el("span", { "data-flows": e.id }, String(count)), el("span", { class: "muted" }, " live flows"));
            const enis = e.placement ? e.placement.enis : e.zones.map((z) => ({ zone: z }));
            for (const n of enis) {
              const z = report.zones.find((h) => h.endpoint === e.id && h.zone === n.zone);
              const ok = z ? z.healthy : undefined;
              const eni = el("div", { class: "zone " + (z && z.shiftedAway ? "shifted" : health(ok)), "data-eni": e.id + "/" + n.zone, "data-health": health(ok) },
                n.zone + (n.address ? " · " + n.address : ""), " ", el("span", { class: "chip " + health(ok) }, health(ok)));
              if (z && z.shiftedAway) eni.append(" ", shiftedChip(n.zone));
              card.append(eni);
            }
            box.append(card);
          }
          if (!endpoints.length) box.append(el("span", { class: "muted" }, "no endpoint this token may see"));
        }
        function drawEvents(events) {
          const list = $("events"); list.replaceChildren();
          for (const ev of events.slice(-30).reverse()) {
            list.append(el("li", { "data-event": ev.kind }, ev.time.replace("T", " ").slice(0, 19) + "  " + ev.kind + "  " + ev.message));
          }
          if (!events.length) list.append(el("li", { class: "muted" }, "none yet"));
        }
        let timer = null;
        async function refresh() {
          clearTimeout(timer);
          if (!sessionStorage.getItem(KEY)) { showLogin(); return; }
          try {
            const [services, endpoints, report, flows, events] = await Promise.all([
              api("/v1/services"), api("/v1/endpoints"), api("/v1/health"), api("/v1/nat"), api("/v1/events")]);
            drawServices(services, report);
            drawEndpoints(endpoints, report, flows);
            drawEvents(events);
            $("login").hidden = true; $("board").hidden = false; $("logout").hidden = false;
            const shifts = (report.zonalShifts || []).map((z) => z.zone);
            $("status").textContent = report.status + " · config serial " + report.configSerial
              + (shifts.length ? " · shifted away: " + shifts.join(", ") : "") + " · " + new Date().toLocaleTimeString();
            document.body.dataset.refreshed = String(Date.now());
          } catch (error) {
            if (error.unauthorized) { sessionStorage.removeItem(KEY); showLogin("That token is not known."); return; }
            $("status").textContent = "cannot reach the API: " + error.message;
          }
          timer = setTimeout(refresh, \(refreshSeconds * 1000));
        }
        $("login-form").addEventListener("submit", (event) => {
          event.preventDefault();
          const token = $("token").value.trim();
          $("token").value = "";
          if (token) { sessionStorage.setItem(KEY, token); refresh(); }
        });
        $("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); showLogin(); });
        refresh();
        </script>
        </body>
        </html>
        """
}
