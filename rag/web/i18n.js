// The page's interface text in English and Chinese: the language follows navigator.language until the switch
// chooses one (remembered in localStorage); every element carrying data-i18n / data-i18n-placeholder is filled.

const LANG_STORE = "rag.lang";

const STRINGS = {
  en: {
    switchTo: "中文",
    tagline: "Answers from your documents, with sources",
    newConversation: "New conversation",
    panels: "Library",
    emptyHint:
      "Ask a question about the indexed documents, in Chinese or English. Each answer cites its sources; click a source to read the passage.",
    question: "Question",
    placeholder: "Ask a question…",
    send: "Ask",
    you: "You",
    assistant: "Answer",
    thinking: "Searching the documents…",
    statusTitle: "Index",
    documents: "Documents",
    chunks: "Passages",
    embedder: "Embedder",
    answerMode: "Answer mode",
    editions: "Editions",
    uploadTitle: "Add documents",
    uploadHint: "PDF, Word, HTML, Excel, CSV, TXT or Markdown files",
    upload: "Upload",
    uploading: "uploading…",
    ingesting: "indexing…",
    uploadDone: (r) => `indexed: ${r.added} added, ${r.updated} updated, ${r.unchanged} unchanged; ${r.chunks} passages in all`,
    uploadFailed: "failed",
    close: "Close",
    keyTitle: "API key",
    keyHint: "This server needs its API key (RAG_SERVER_API_KEY). It is kept in this tab only.",
    keyWrong: "The key was rejected. Check it and try again.",
    keySubmit: "Continue",
    modeLlm: "LLM",
    modeExtractive: "Extractive (no chat model)",
    modeRefused: "Not found",
    model: "model",
    seed: "seed",
    searchedFor: "Searched for",
    warnings: "Verification warnings",
    unsupported: "Sentences without a source",
    nearest: "Nearest passages",
    sources: "Sources",
    page: (n) => `p. ${n}`,
    pages: "Pages",
    pageImage: (n) => `Page ${n} of the PDF`,
    noImage: "No page image",
    passageOf: "Passage",
    errorPrefix: "Error",
    networkError: "The server did not answer. Is `rag serve` running?",
  },
  zh: {
    switchTo: "English",
    tagline: "基于文档作答，附出处",
    newConversation: "新对话",
    panels: "资料库",
    emptyHint: "用中文或英文提问。每个回答都标注出处，点击出处即可查看原文段落。",
    question: "问题",
    placeholder: "请输入问题…",
    send: "提问",
    you: "您",
    assistant: "回答",
    thinking: "正在检索文档…",
    statusTitle: "索引",
    documents: "文档",
    chunks: "段落",
    embedder: "向量模型",
    answerMode: "回答方式",
    editions: "版本",
    uploadTitle: "添加文档",
    uploadHint: "PDF、Word、HTML、Excel、CSV、TXT 或 Markdown 文件",
    upload: "上传",
    uploading: "上传中…",
    ingesting: "建立索引中…",
    uploadDone: (r) => `已建索引：新增 ${r.added}，更新 ${r.updated}，未变 ${r.unchanged}；共 ${r.chunks} 个段落`,
    uploadFailed: "失败",
    close: "关闭",
    keyTitle: "API 密钥",
    keyHint: "此服务器需要 API 密钥（RAG_SERVER_API_KEY）。密钥只保存在当前标签页中。",
    keyWrong: "密钥被拒绝，请检查后重试。",
    keySubmit: "继续",
    modeLlm: "大模型",
    modeExtractive: "摘录（未配置大模型）",
    modeRefused: "未找到答案",
    model: "模型",
    seed: "种子",
    searchedFor: "检索问题",
    warnings: "校验提示",
    unsupported: "未标注出处的句子",
    nearest: "最接近的段落",
    sources: "出处",
    page: (n) => `第${n}页`,
    pages: "页码",
    pageImage: (n) => `PDF 第${n}页`,
    noImage: "无页面图像",
    passageOf: "段落",
    errorPrefix: "错误",
    networkError: "服务器没有响应。`rag serve` 是否在运行？",
  },
};

let language = "en";

export function pickLanguage() {
  const saved = localStorage.getItem(LANG_STORE);
  if (saved === "zh" || saved === "en") language = saved;
  else language = (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
  return language;
}

export function switchLanguage() {
  language = language === "zh" ? "en" : "zh";
  localStorage.setItem(LANG_STORE, language);
  return language;
}

export function t(key, ...args) {
  const table = STRINGS[language] || STRINGS.en;
  const value = key in table ? table[key] : STRINGS.en[key];
  if (value === undefined) return key;
  return typeof value === "function" ? value(...args) : value;
}

// The fixed text of the page; what was rendered from answers is redrawn by its owner.
export function translatePage() {
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}
