// Progressive enhancement only: every form also works with its submit button.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy-target]")) {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copyTarget).textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Select and copy";
      }
    });
  }
  // On a phone the sections fold into a menu; open on wider screens (and wherever JavaScript is off).
  if (window.matchMedia("(max-width: 720px)").matches) {
    for (const menu of document.querySelectorAll("details[data-fold-on-phone]")) {
      menu.open = false;
    }
  }
  // Pages with work in progress (a bulk re-send) reload themselves while it runs.
  const refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    setTimeout(() => window.location.reload(), Number(refresh.dataset.refresh) * 1000);
  }
});
