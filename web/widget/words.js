// Everything the widget says, per language. The site's `language` setting picks one, or
// "auto": the first of the browser's languages that is here, else English.
// `{name}` in a text is replaced by `fill()`.

const en = {
  label: 'Call us',
  call: 'Call',
  hangup: 'Hang up',
  mute: 'Mute',
  close: 'Close',
  keypad: 'Keypad',
  star: 'star',
  pound: 'pound',
  volume: 'Volume',
  micLevel: 'Microphone level',
  callTime: 'Call time',
  name: 'Your name',
  reason: 'What is it about?',
  optional: '(optional)',
  nameNeeded: 'Please enter your name, then press Call.',
  loading: 'Connecting to the call service…',
  checking: 'Checking this browser…',
  reconnecting: 'Connection lost, reconnecting…',
  ready: 'Ready',
  microphone: 'Asking for your microphone…',
  microphoneHelp: 'If your browser asks, allow the microphone so that we can hear you.',
  connecting: 'Connecting…',
  ringing: 'Ringing…',
  inCall: 'In call',
  onHold: 'On hold',
  onHoldHelp: 'You are on hold. Please stay on the line.',
  ended: 'Call ended',
  endedBecause: 'Call ended: {cause}',
  failed: 'Call failed: {reason}',
  cannotCall: 'Cannot call: {reason}',
  causes: {
    busy: 'busy',
    no_answer: 'no answer',
    declined: 'declined',
    unreachable: 'unreachable',
    failed: 'the call failed',
    operator_hung_up: 'the other side hung up',
    visitor_hung_up: 'you hung up',
    time_limit: 'the time limit was reached',
    network: 'the network blocked the call',
    connection_lost: 'the connection was lost',
  },
  causeHelp: {
    busy: 'The line is busy. Please try again in a few minutes.',
    no_answer: 'Nobody could answer. Please try again later.',
    declined: 'Please try again later.',
    unreachable: 'Please try again later.',
    network:
      'A firewall, VPN or company network may block calls. Try another network (mobile data, for example) or turn the VPN off, then call again.',
    connection_lost: 'Check your internet connection, then call again.',
  },
  refusals: {
    busy: 'All lines are busy. Please try again in a few minutes.',
    site_busy: 'All lines are busy. Please try again in a few minutes.',
    too_many_calls: 'There is already a call from your connection.',
    budget_exhausted: 'Calls are paused for today. Please try again later.',
    unavailable: 'Calls cannot be taken right now. Please try again later.',
    name_required: 'Please enter your name, then press Call.',
  },
  problems: {
    'mic-denied': [
      'Microphone access was denied. Allow it to call.',
      'Click the microphone or lock icon in the address bar, allow the microphone for this site, then press Call again.',
    ],
    'mic-blocked': [
      'This page does not let the call use the microphone.',
      'The site must add allow="microphone; autoplay" to its iframe. Please tell the site\'s owner.',
    ],
    'no-mic': [
      'No microphone was found.',
      'Connect a microphone or a headset, then press Call again.',
    ],
    'mic-busy': [
      'The microphone is in use by another program.',
      'Close the other program, then press Call again.',
    ],
    'mic-failed': [
      'Cannot use the microphone: {reason}',
      'Check your microphone, then press Call again.',
    ],
    insecure: [
      'Calling needs a secure (https) page.',
      'Browsers only allow the microphone on secure pages: open this page with https:// instead of http://.',
    ],
    unsupported: [
      'This browser cannot make calls.',
      'Please use a recent version of Chrome, Edge, Firefox or Safari.',
    ],
  },
};

const fr = {
  label: 'Appelez-nous',
  call: 'Appeler',
  hangup: 'Raccrocher',
  mute: 'Couper le micro',
  close: 'Fermer',
  keypad: 'Clavier',
  star: 'étoile',
  pound: 'dièse',
  volume: 'Volume',
  micLevel: 'Niveau du micro',
  callTime: "Durée de l'appel",
  name: 'Votre nom',
  reason: 'À quel sujet ?',
  optional: '(facultatif)',
  nameNeeded: 'Indiquez votre nom, puis appuyez sur Appeler.',
  loading: "Connexion au service d'appel…",
  checking: 'Vérification du navigateur…',
  reconnecting: 'Connexion perdue, reconnexion…',
  ready: 'Prêt',
  microphone: 'Accès au micro…',
  microphoneHelp: 'Si votre navigateur le demande, autorisez le micro pour que nous vous entendions.',
  connecting: 'Connexion…',
  ringing: 'Ça sonne…',
  inCall: 'En communication',
  onHold: 'En attente',
  onHoldHelp: 'Vous êtes en attente. Merci de rester en ligne.',
  ended: 'Appel terminé',
  endedBecause: 'Appel terminé : {cause}',
  failed: "Échec de l'appel : {reason}",
  cannotCall: "Impossible d'appeler : {reason}",
  causes: {
    busy: 'occupé',
    no_answer: 'pas de réponse',
    declined: 'refusé',
    unreachable: 'injoignable',
    failed: "l'appel a échoué",
    operator_hung_up: 'votre correspondant a raccroché',
    visitor_hung_up: 'vous avez raccroché',
    time_limit: 'la durée maximale est atteinte',
    network: "le réseau a bloqué l'appel",
    connection_lost: 'la connexion a été perdue',
  },
  causeHelp: {
    busy: 'La ligne est occupée. Réessayez dans quelques minutes.',
    no_answer: 'Personne n’a pu répondre. Réessayez plus tard.',
    declined: 'Réessayez plus tard.',
    unreachable: 'Réessayez plus tard.',
    network:
      "Un pare-feu, un VPN ou un réseau d'entreprise peut bloquer les appels. Essayez un autre réseau (les données mobiles, par exemple) ou coupez le VPN, puis rappelez.",
    connection_lost: 'Vérifiez votre connexion internet, puis rappelez.',
  },
  refusals: {
    busy: 'Toutes les lignes sont occupées. Réessayez dans quelques minutes.',
    site_busy: 'Toutes les lignes sont occupées. Réessayez dans quelques minutes.',
    too_many_calls: 'Un appel est déjà en cours depuis votre connexion.',
    budget_exhausted: "Les appels sont suspendus pour aujourd'hui. Réessayez plus tard.",
    unavailable: 'Les appels ne peuvent pas être pris pour le moment. Réessayez plus tard.',
    name_required: 'Indiquez votre nom, puis appuyez sur Appeler.',
  },
  problems: {
    'mic-denied': [
      "L'accès au micro a été refusé. Autorisez-le pour appeler.",
      "Cliquez sur l'icône du micro ou du cadenas dans la barre d'adresse, autorisez le micro pour ce site, puis appuyez de nouveau sur Appeler.",
    ],
    'mic-blocked': [
      "Cette page ne permet pas à l'appel d'utiliser le micro.",
      'Le site doit ajouter allow="microphone; autoplay" à son iframe. Merci de prévenir le propriétaire du site.',
    ],
    'no-mic': [
      'Aucun micro n’a été trouvé.',
      'Branchez un micro ou un casque, puis appuyez de nouveau sur Appeler.',
    ],
    'mic-busy': [
      'Le micro est utilisé par un autre programme.',
      "Fermez l'autre programme, puis appuyez de nouveau sur Appeler.",
    ],
    'mic-failed': [
      "Impossible d'utiliser le micro : {reason}",
      'Vérifiez votre micro, puis appuyez de nouveau sur Appeler.',
    ],
    insecure: [
      'Pour appeler, la page doit être sécurisée (https).',
      'Les navigateurs n’autorisent le micro que sur les pages sécurisées : ouvrez cette page avec https:// au lieu de http://.',
    ],
    unsupported: [
      'Ce navigateur ne peut pas passer d’appels.',
      'Utilisez une version récente de Chrome, Edge, Firefox ou Safari.',
    ],
  },
};

const de = {
  label: 'Rufen Sie uns an',
  call: 'Anrufen',
  hangup: 'Auflegen',
  mute: 'Stummschalten',
  close: 'Schließen',
  keypad: 'Tastenfeld',
  star: 'Stern',
  pound: 'Raute',
  volume: 'Lautstärke',
  micLevel: 'Mikrofonpegel',
  callTime: 'Gesprächsdauer',
  name: 'Ihr Name',
  reason: 'Worum geht es?',
  optional: '(optional)',
  nameNeeded: 'Bitte geben Sie Ihren Namen ein und drücken Sie dann Anrufen.',
  loading: 'Verbindung zum Anrufdienst…',
  checking: 'Browser wird geprüft…',
  reconnecting: 'Verbindung verloren, neuer Versuch…',
  ready: 'Bereit',
  microphone: 'Mikrofonzugriff…',
  microphoneHelp: 'Wenn Ihr Browser fragt, erlauben Sie das Mikrofon, damit wir Sie hören.',
  connecting: 'Verbindung wird aufgebaut…',
  ringing: 'Es klingelt…',
  inCall: 'Im Gespräch',
  onHold: 'Gehalten',
  onHoldHelp: 'Sie werden gehalten. Bitte bleiben Sie in der Leitung.',
  ended: 'Gespräch beendet',
  endedBecause: 'Gespräch beendet: {cause}',
  failed: 'Anruf fehlgeschlagen: {reason}',
  cannotCall: 'Anrufen nicht möglich: {reason}',
  causes: {
    busy: 'besetzt',
    no_answer: 'keine Antwort',
    declined: 'abgelehnt',
    unreachable: 'nicht erreichbar',
    failed: 'der Anruf ist fehlgeschlagen',
    operator_hung_up: 'die Gegenseite hat aufgelegt',
    visitor_hung_up: 'Sie haben aufgelegt',
    time_limit: 'die Höchstdauer ist erreicht',
    network: 'das Netzwerk hat den Anruf blockiert',
    connection_lost: 'die Verbindung ist abgebrochen',
  },
  causeHelp: {
    busy: 'Die Leitung ist besetzt. Bitte versuchen Sie es in ein paar Minuten noch einmal.',
    no_answer: 'Niemand konnte abnehmen. Bitte versuchen Sie es später noch einmal.',
    declined: 'Bitte versuchen Sie es später noch einmal.',
    unreachable: 'Bitte versuchen Sie es später noch einmal.',
    network:
      'Eine Firewall, ein VPN oder ein Firmennetz kann Anrufe blockieren. Versuchen Sie ein anderes Netz (zum Beispiel mobile Daten) oder schalten Sie das VPN aus und rufen Sie erneut an.',
    connection_lost: 'Prüfen Sie Ihre Internetverbindung und rufen Sie erneut an.',
  },
  refusals: {
    busy: 'Alle Leitungen sind besetzt. Bitte versuchen Sie es in ein paar Minuten noch einmal.',
    site_busy: 'Alle Leitungen sind besetzt. Bitte versuchen Sie es in ein paar Minuten noch einmal.',
    too_many_calls: 'Von Ihrer Verbindung aus läuft bereits ein Anruf.',
    budget_exhausted: 'Anrufe sind für heute pausiert. Bitte versuchen Sie es später noch einmal.',
    unavailable: 'Anrufe können gerade nicht angenommen werden. Bitte versuchen Sie es später noch einmal.',
    name_required: 'Bitte geben Sie Ihren Namen ein und drücken Sie dann Anrufen.',
  },
  problems: {
    'mic-denied': [
      'Der Mikrofonzugriff wurde verweigert. Erlauben Sie ihn, um anzurufen.',
      'Klicken Sie auf das Mikrofon- oder Schloss-Symbol in der Adressleiste, erlauben Sie das Mikrofon für diese Seite und drücken Sie erneut auf Anrufen.',
    ],
    'mic-blocked': [
      'Diese Seite erlaubt dem Anruf das Mikrofon nicht.',
      'Die Website muss ihrem iframe allow="microphone; autoplay" hinzufügen. Bitte sagen Sie dem Betreiber Bescheid.',
    ],
    'no-mic': [
      'Es wurde kein Mikrofon gefunden.',
      'Schließen Sie ein Mikrofon oder Headset an und drücken Sie erneut auf Anrufen.',
    ],
    'mic-busy': [
      'Das Mikrofon wird von einem anderen Programm verwendet.',
      'Schließen Sie das andere Programm und drücken Sie erneut auf Anrufen.',
    ],
    'mic-failed': [
      'Das Mikrofon kann nicht verwendet werden: {reason}',
      'Prüfen Sie Ihr Mikrofon und drücken Sie erneut auf Anrufen.',
    ],
    insecure: [
      'Zum Anrufen muss die Seite sicher (https) sein.',
      'Browser erlauben das Mikrofon nur auf sicheren Seiten: Öffnen Sie diese Seite mit https:// statt http://.',
    ],
    unsupported: [
      'Mit diesem Browser kann nicht angerufen werden.',
      'Bitte verwenden Sie eine aktuelle Version von Chrome, Edge, Firefox oder Safari.',
    ],
  },
};

export const LANGUAGES = { en, fr, de };

/** The language code to use: the site's choice, else the browser's first one we have. */
export function pickLanguage(setting, browserLanguages = navigator.languages || []) {
  if (setting && setting !== 'auto' && LANGUAGES[setting]) return setting;
  for (const tag of browserLanguages) {
    const primary = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGES[primary]) return primary;
  }
  return 'en';
}

/** `text` with each `{key}` replaced by `values[key]`. */
export function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}
