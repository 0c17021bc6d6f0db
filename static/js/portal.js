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
  // A fold of choices that "every field" stands for opens when that box is unchecked: the single fields are
  // then what the person is choosing among.
  for (const fold of document.querySelectorAll("details[data-opens-when-unchecked]")) {
    const box = document.getElementById(fold.dataset.opensWhenUnchecked);
    box?.addEventListener("change", () => {
      if (!box.checked) {
        fold.open = true;
      }
    });
  }
  // After a refused submit, the error summary takes focus, so a keyboard or screen-reader user starts there.
  const summary = document.querySelector("[data-focus-on-load]");
  if (summary) {
    summary.focus();
  }
  // Fields that apply only to one choice (e.g. signing credentials to the credentials method) show with it.
  for (const field of document.querySelectorAll("[data-shown-when]")) {
    const [name, value] = field.dataset.shownWhen.split("=");
    const inputs = document.querySelectorAll(`input[name="${name}"]`);
    const update = () => {
      const chosen = document.querySelector(`input[name="${name}"]:checked`);
      field.hidden = !chosen || chosen.value !== value;
    };
    for (const input of inputs) {
      input.addEventListener("change", update);
    }
    update();
  }
  // "Select all" for a group of checkboxes.
  for (const button of document.querySelectorAll("button[data-select-all]")) {
    button.addEventListener("click", () => {
      const boxes = document.querySelectorAll(`input[type=checkbox][data-group="${button.dataset.selectAll}"]`);
      const check = [...boxes].some((box) => !box.checked);
      for (const box of boxes) {
        box.checked = check;
      }
    });
  }
  // On a phone the sections fold into a menu; open on wider screens (and wherever JavaScript is off).
  if (window.matchMedia("(max-width: 720px)").matches) {
    for (const menu of document.querySelectorAll("details[data-fold-on-phone]")) {
      menu.open = false;
    }
  }
  // Pages with work in progress (a bulk re-send, a test a worker is sending) reload themselves while it runs;
  // with data-refresh-to, they go to the address that shows its result.
  const refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    setTimeout(() => {
      const target = new URL(refresh.dataset.refreshTo || window.location.href, window.location.href);
      if (target.pathname + target.search === window.location.pathname + window.location.search) {
        window.location.reload();
      } else {
        window.location.replace(target.href);
      }
    }, Number(refresh.dataset.refresh) * 1000);
  }
});
