/**
 * The app's words: Japanese by default (the bank's customers; the manual's
 * own terms: 初期設定, サービスID, ユーザID, 利用開始パスワード, トークン発行,
 * 利用解除), English on request. One entry per refusal the bank or the
 * client can give (host/soft/client.ts SoftSetupError codes).
 */
export type Lang = "ja" | "en";

export interface Words {
  title: string;
  setupHeading: string;
  setupIntro: string;
  serviceId: string;
  serviceIdHint: string;
  userId: string;
  userIdHint: string;
  password: string;
  passwordHint: string;
  showPassword: string;
  setupButton: string;
  settingUp: string;
  codeHeading: string;
  bank: string;
  checkBank: string;
  code: string;
  secondsLeft: (n: number) => string;
  nextCodeIn: string;
  userIdShown: (id: string) => string;
  remove: string;
  removeConfirm: string;
  removeYes: string;
  removeNo: string;
  removed: string;
  setupDone: string;
  language: string;
  offlineReady: string;
  badServiceId: string;
  badUserIdFormat: string;
  badUserIdCheck: string;
  emptyPassword: string;
  errors: Record<string, string>;
  wrongPassword: (left: number | undefined) => string;
  setupNotYet: (from: string | undefined) => string;
  noStorage: string;
  saveFailed: string;
  clockOff: (minutes: number) => string;
}

export const WORDS: Record<Lang, Words> = {
  ja: {
    title: "ワンタイムパスワード",
    setupHeading: "初期設定",
    setupIntro: "「トークン発行のご案内」メールに記載のサービスIDとユーザID、およびトークン発行時にお客さまが決めた利用開始パスワードを入力してください。",
    serviceId: "サービスID",
    serviceIdHint: "8桁の数字",
    userId: "ユーザID",
    userIdHint: "12桁の数字",
    password: "利用開始パスワード",
    passwordHint: "金融機関がメールや電話で利用開始パスワードをおたずねすることはありません。",
    showPassword: "パスワードを表示する",
    // The manual's own label for this button (bank-otp-manual.ja.txt, アプリの初期設定 手順1).
    setupButton: "送信",
    settingUp: "設定しています…",
    codeHeading: "ワンタイムパスワード",
    bank: "発行元",
    checkBank: "お取引の金融機関名が表示されていることをご確認ください。",
    code: "ワンタイムパスワード",
    secondsLeft: (n) => `次のパスワードまで あと${n}秒`,
    nextCodeIn: "次のパスワードまでの残り時間",
    userIdShown: (id) => `ユーザID ${id}`,
    remove: "この端末からトークンを削除",
    removeConfirm: "削除すると、この端末ではワンタイムパスワードを表示できなくなります。削除だけでは利用解除されません。機種変更やアプリの削除の前に、インターネットバンキングで「ワンタイムパスワードアプリの利用解除」を行ってください。削除しますか？",
    removeYes: "削除する",
    removeNo: "キャンセル",
    removed: "この端末からトークンを削除しました。",
    setupDone: "初期設定が完了しました。",
    language: "English",
    offlineReady: "この端末で、通信がなくてもワンタイムパスワードを表示できます。",
    badServiceId: "サービスIDは8桁の数字で入力してください。",
    badUserIdFormat: "ユーザIDは12桁の数字で入力してください。",
    badUserIdCheck: "ユーザIDが正しくありません。メールに記載のユーザIDを、数字の順番も含めてご確認ください。",
    emptyPassword: "利用開始パスワードを入力してください。",
    errors: {
      unknown_user: "サービスIDまたはユーザIDが見つかりません。「トークン発行のご案内」メールに記載のIDをご確認ください。",
      bad_user_id: "ユーザIDが正しくありません。メールに記載のユーザIDをご確認ください。",
      already_set_up: "このユーザIDは初期設定済みです。別の端末で使うには、利用解除のうえ、トークンを発行し直してください。",
      setup_expired: "初期設定の期限が過ぎたため、このトークンは無効になりました。お手数ですが、トークンを発行し直してください。",
      voided: "利用開始パスワードの誤りが続いたため、このトークンは無効になりました。お手数ですが、トークンを発行し直してください。",
      ticket_expired: "時間がたったため、設定を完了できませんでした。もう一度「送信」を押してください。",
      bad_confirmation: "金融機関の応答を確認できなかったため、設定を中止しました（この端末には何も保存していません）。正しいアドレスのアプリから、もう一度お試しください。",
      not_set_up: "初期設定が完了していません。",
      bad_input: "入力内容をご確認ください（サービスIDは8桁、ユーザIDは12桁の数字です）。",
      bad_response: "金融機関から想定外の応答がありました（この端末には何も保存していません）。しばらくしてからもう一度お試しください。",
      network: "金融機関に接続できませんでした。通信状態をご確認のうえ、もう一度お試しください。",
      unavailable: "ただいま初期設定を受け付けできません。しばらくしてからもう一度お試しください。",
      rate_limited: "操作が集中しています。しばらくしてからもう一度お試しください。",
      failed: "初期設定できませんでした。しばらくしてからもう一度お試しください。",
    },
    wrongPassword: (left) =>
      left === undefined
        ? "利用開始パスワードが正しくありません。"
        : left > 0
          ? `利用開始パスワードが正しくありません。あと${left}回誤ると、このトークンは無効になります。`
          : "利用開始パスワードの誤りが続いたため、このトークンは無効になりました。お手数ですが、トークンを発行し直してください。",
    setupNotYet: (from) => (from ? `利用解除の翌日以降に初期設定できます。${from}以降にお試しください。` : "利用解除の翌日以降に初期設定できます。明日以降にお試しください。"),
    noStorage: "この端末のブラウザでは、トークンを安全に保存できません（プライベートブラウズ、ブラウザの設定など）。銀行への初期設定はまだ行っていません（ユーザIDはそのまま使えます）。通常のブラウザでお試しください。",
    saveFailed: "初期設定はできましたが、この端末にトークンを保存できませんでした。このユーザIDは再度設定できないため、お手数ですがトークンを発行し直してください。",
    clockOff: (m) => `この端末の時計が約${m}分ずれているため、表示されるワンタイムパスワードは使えない可能性があります。端末の日付と時刻を「自動設定」にしてください。`,
  },
  en: {
    title: "One-time password",
    setupHeading: "Set-up",
    setupIntro: "Enter the service ID and user ID from the mail “トークン発行のご案内” (token issued), and the activation password you chose when the token was issued.",
    serviceId: "Service ID",
    serviceIdHint: "8 digits",
    userId: "User ID",
    userIdHint: "12 digits",
    password: "Activation password",
    passwordHint: "The bank never asks for your activation password by mail or phone.",
    showPassword: "Show password",
    setupButton: "Set up",
    settingUp: "Setting up…",
    codeHeading: "One-time password",
    bank: "Issued by",
    checkBank: "Check that your bank's name is shown.",
    code: "One-time password",
    secondsLeft: (n) => `Next code in ${n} s`,
    nextCodeIn: "Time until the next code",
    userIdShown: (id) => `User ID ${id}`,
    remove: "Remove the token from this device",
    removeConfirm: "This device will no longer show codes. Removing does not deactivate the token: before changing phones or removing the app, deactivate it in internet banking. Remove it?",
    removeYes: "Remove",
    removeNo: "Cancel",
    removed: "The token was removed from this device.",
    setupDone: "Set-up is complete.",
    language: "日本語",
    offlineReady: "This device shows codes without a connection.",
    badServiceId: "The service ID is 8 digits.",
    badUserIdFormat: "The user ID is 12 digits.",
    badUserIdCheck: "That user ID is not valid. Check it against the mail, digit by digit.",
    emptyPassword: "Enter the activation password.",
    errors: {
      unknown_user: "No such service ID or user ID. Check the IDs in the mail “トークン発行のご案内”.",
      bad_user_id: "That user ID is not valid. Check it against the mail.",
      already_set_up: "This user ID has already been set up. To use another device, deactivate the token and have a new one issued.",
      setup_expired: "The time to set up has passed and the token is void. Please have a new token issued.",
      voided: "Too many wrong activation passwords: the token is void. Please have a new token issued.",
      ticket_expired: "That took too long. Press “Set up” again.",
      bad_confirmation: "The bank's answer could not be confirmed, so the set-up was stopped (nothing was saved). Open the app from the bank's own address and try again.",
      not_set_up: "The set-up is not finished.",
      bad_input: "Check what you entered (the service ID is 8 digits, the user ID 12).",
      bad_response: "The bank's answer was not what the app expected (nothing was saved). Please try again later.",
      network: "Cannot reach the bank. Check the connection and try again.",
      unavailable: "Set-up is not available at the moment. Please try again later.",
      rate_limited: "Too many requests. Please try again later.",
      failed: "The set-up failed. Please try again later.",
    },
    wrongPassword: (left) =>
      left === undefined
        ? "Wrong activation password."
        : left > 0
          ? `Wrong activation password. ${left} more wrong ${left === 1 ? "try voids" : "tries void"} the token.`
          : "Too many wrong activation passwords: the token is void. Please have a new token issued.",
    setupNotYet: (from) => (from ? `Set-up is possible from the day after deactivation: try again from ${from}.` : "Set-up is possible from the day after deactivation: try again tomorrow."),
    noStorage: "This browser cannot store the token safely here (private browsing, or storage blocked by a setting). Nothing was sent to the bank: your user ID is still unused. Try a normal browser window.",
    saveFailed: "The set-up succeeded at the bank but this device could not store the token. A user ID sets up once: please have a new token issued.",
    clockOff: (m) => `This device's clock is about ${m} min off, so the codes shown may be refused. Set the device's date and time to automatic.`,
  },
};

const LANG_KEY = "fobkit-app-lang";

export function chosenLang(): Lang {
  try {
    const v = localStorage.getItem(LANG_KEY);
    if (v === "ja" || v === "en") return v;
  } catch {
    // storage unavailable: default
  }
  return "ja";
}

export function rememberLang(lang: Lang): void {
  try {
    localStorage.setItem(LANG_KEY, lang);
  } catch {
    // not remembered; fine
  }
}
