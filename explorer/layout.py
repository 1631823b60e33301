"""Window-size adaptation: on a narrow window the sidebar starts collapsed, so the page gets the whole width."""

from __future__ import annotations

import streamlit as st

NARROW_PX = 900
"""Windows at most this wide open with the sidebar collapsed (Streamlit's own cut-off is 768 px, so at 800 px the
sidebar took 300 px and clipped the page's controls). The user can open it again; it is collapsed once per tab."""

_SCRIPT = """
<script>
(() => {
  const key = "vae-explorer-sidebar-collapsed-once";
  if (window.innerWidth > %(narrow)d || window.sessionStorage.getItem(key)) return;
  let tries = 0, clicked = false;
  const timer = window.setInterval(() => {
    const sidebar = document.querySelector('[data-testid="stSidebar"]');
    const button = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
    const collapsed = sidebar && sidebar.getAttribute("data-collapsed") === "true";
    if (sidebar && button && !collapsed && !clicked) {
      button.click();
      clicked = true;
    } else if (collapsed) {
      window.sessionStorage.setItem(key, "1");
      window.clearInterval(timer);
    }
    if (++tries > 300) {
      window.clearInterval(timer);
    }
  }, 100);
})();
</script>
"""


def collapse_sidebar_when_narrow() -> None:
    """Collapse the sidebar once per browser tab when the window is at most NARROW_PX wide (app.py, every run)."""
    st.html(_SCRIPT % {"narrow": NARROW_PX}, unsafe_allow_javascript=True)
