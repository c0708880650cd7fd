// The language switcher: choosing a language posts the form, and Django's set_language stores it in a cookie.
const select = document.getElementById("language-select");
select?.addEventListener("change", () => select.form.requestSubmit());
