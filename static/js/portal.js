// Progressive enhancement only: every form also works with its submit button.
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-autosubmit]")) {
    for (const select of form.querySelectorAll("select")) {
      select.addEventListener("change", () => form.requestSubmit());
    }
  }
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
  // Pages with work in progress (a bulk re-send) reload themselves while it runs.
  const refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    setTimeout(() => window.location.reload(), Number(refresh.dataset.refresh) * 1000);
  }
});
